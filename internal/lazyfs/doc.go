// Package lazyfs is a test filesystem that forgets, on a simulated power cut, every
// change that was not made durable with fsync: the tool the reliability suite uses
// to prove that a 250 (or a D record) rests on the right fsyncs, the way Jepsen's
// LazyFS does for databases. A SIGKILL cannot show that: the kernel keeps every
// write of a killed process in its page cache, synced or not.
//
// It is test support only, like internal/smtptest: nothing but tests imports it.
// It needs root and /dev/fuse; MountForTest skips the test with a one-line reason
// where they are missing.
//
// # How it works
//
// Mount serves a FUSE filesystem (github.com/hanwen/go-fuse/v2's loopback) that
// passes every operation to a backing directory, so the backing directory always
// holds what the page cache would: every write, synced or not. Beside it, the
// filesystem keeps what it would need to go back to the durable state:
//
//   - per file (by inode): its size at its last fsync or fdatasync and, for every
//     write or truncation since that reaches below that size, the bytes it
//     replaced (an undo log);
//   - per directory (by inode): for every name created, removed or renamed since
//     the directory's last fsync, what the name pointed to before the first such
//     change (nothing, or an inode and its type). A file that loses its last name
//     is first hard-linked into an "attic" beside the tree, so that the name can
//     be brought back.
//
// PowerCut unmounts (every process using the filesystem must have exited, as
// after a power cut), then goes back to the durable state: each file's undo log is
// played backwards and the file cut to its synced size; then a new tree is built
// from the durable directory entries, hard-linking every file from wherever it is
// now, and replaces the old one. Then it mounts again with nothing pending.
//
// # The model, and why
//
// It is meant to be no kinder than ext4 with its defaults (data=ordered,
// auto_da_alloc aside), and to be simple; where the two pull apart it is harsher:
//
//   - Data not fsync'd is lost: a file comes back with its synced length and its
//     synced bytes (ext4 may keep some of the rest; never all of it for sure).
//   - A name is durable only once its directory was fsync'd after the change: a
//     file created and fsync'd in a directory that was not vanishes; a rename or
//     a removal not followed by an fsync of the directory is undone (the old name
//     comes back). The fsync of a file does not make its name durable (POSIX does
//     not promise it; on ext4 it happens to, through the journal).
//   - Each directory is judged on its own: a rename from a directory that was not
//     fsync'd into one that was leaves the file under both names (ext4 would keep
//     one of the two; a reader sees one extra file, never one fewer).
//   - A directory renamed between two directories is brought back once: if both
//     its old and its new place are durable, the first found in the walk wins.
//   - Metadata other than sizes and names (modes, times, owners) is kept as it is.
//
// A limit: a directory removed and another made in the same cycle may get the
// same inode number from the backing filesystem, and a cut then confuses the two
// (files cannot: one that loses its last name stays linked in the attic). mtad
// removes no directory.
//
// What a clean Unmount leaves is everything, as a clean shutdown's sync would.
package lazyfs
