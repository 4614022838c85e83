package main

import "syscall"

// dropGroup gives up the group mtactl was installed setgid to (mtadrop, see
// control/maildrop.go): only sendmail needs it, to write into the maildrop, so
// every other command runs with the invoking user's own rights alone. It does
// nothing when mtactl is not setgid.
func dropGroup() error {
	if rgid := syscall.Getgid(); syscall.Getegid() != rgid {
		return syscall.Setresgid(rgid, rgid, rgid)
	}
	return nil
}
