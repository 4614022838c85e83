// Package auth owns the SMTP AUTH password store and the failed-AUTH limiters.
//
// The store is a text file, DATA/passwd by default (the data directory, not the
// configuration directory: it changes without a cnbuild, like the queue), with one
// "user:bcrypt-hash" line per user; "!" or "#" lines and blank lines are comments.
// mtactl passwd edits it; the SMTP server loads it and only verifies.
//
// It must not touch the SMTP conversation (the server decides when to call Verify
// and what to reply), the configuration image or the network.
//
// How it works. Verify costs one bcrypt comparison whether or not the user exists:
// an unknown user is compared against a dummy hash of the store's own cost, so the
// reply time does not reveal which names exist. Changes are written to a
// temporary file in the same directory, synced, renamed over the old file and the
// directory synced, so a reader sees the old file or the new one, never a mix, and
// a crash leaves one of the two. The file is created mode 0600: hashes are not
// secrets in the clear, but offline guessing is cheap enough to deny.
//
// Limiter counts failed AUTHs per client address (IPv6 by /64, so that one host
// cannot rotate through its addresses) in a fixed time window. Its memory is
// bounded: when it tracks MaxTracked addresses the least recently failing one is
// forgotten. The product's documentation has no such limiter; we chose that
// forgetting fails open for that address, because failing closed would let an
// attacker with many addresses lock everyone out. ConnCounter is the
// per-connection count behind disconnectbadauthlimit (default 3).
package auth

// Decisions on points the product's documentation leaves open (docs/configuration.md
// repeats them):
//
//   - File: DATA/passwd (DefaultFileName under the data directory). option.dat has
//     no documented option for it; a PASSWD_FILE option would need the compiler.
//   - User names are compared ASCII case-insensitively (stored as written, first
//     spelling wins); they may not contain ':' , whitespace or control characters
//     and are at most MaxUserLen bytes.
//   - Hashes must be bcrypt ($2a$/$2b$/$2y$). New ones use DefaultCost 11 (about
//     0.1-0.2 s per AUTH on a small server; mtactl passwd -cost raises it). A hash
//     below MinCost (10) in the file is loaded, so an old file keeps working, but
//     WeakUsers reports it.
//   - Passwords longer than 72 bytes are refused by Set (bcrypt ignores the rest).
