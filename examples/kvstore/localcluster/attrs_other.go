//go:build !linux

package localcluster

import "syscall"

func childAttrs() *syscall.SysProcAttr { return nil }
