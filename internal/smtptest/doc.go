// Package smtptest holds the SMTP helpers the module's tests share: a raw client
// that writes exactly the bytes it is told, so a test controls every byte of a
// conversation, and a sink, an in-process go-smtp server on loopback that records
// what it accepts; and, for the tests that run a program as another user, an
// account made for the test (NewAccount).
//
// It is test support only: it takes a testing.TB, fails the test on its own
// errors, and must never be imported by non-test code. Every network wait it makes
// is bounded by a deadline, so a silent server fails a test instead of hanging it.
package smtptest
