//go:build !linux

package storagetest

import "syscall"

// sysProcAttr: without Pdeathsig, the process-wide server's watchdog script ends the server
// when the test process is gone.
func sysProcAttr() *syscall.SysProcAttr { return nil }
