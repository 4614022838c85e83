// Package status is the one error type for SMTP replies and delivery outcomes:
// an SMTP code, an RFC 3463 enhanced status code, a diagnostic text, and whether
// the failure is temporary. It owns nothing else and imports nothing of ours.
//
// The rule every package follows: an error that is not a *Status is temporary.
// Something unexpected must defer a message, never bounce it.
package status
