package localcluster

import "syscall"

// childAttrs makes a child die with its parent, so that a parent killed
// without clean-up (a test binary on timeout) leaves no node behind.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
