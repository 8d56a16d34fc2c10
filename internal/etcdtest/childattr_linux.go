package etcdtest

import "syscall"

// childAttr makes the kernel kill a member process if the test process
// dies, even while the member is frozen (SIGSTOP).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
