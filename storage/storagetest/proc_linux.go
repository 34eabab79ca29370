package storagetest

import "syscall"

// sysProcAttr makes the server receive SIGTERM when the test process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
