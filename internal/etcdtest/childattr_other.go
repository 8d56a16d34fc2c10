//go:build !linux

package etcdtest

import "syscall"

// childAttr: without Pdeathsig, a member ends when its stdin closes (the
// test process exited), unless it is frozen at that moment.
func childAttr() *syscall.SysProcAttr { return nil }
