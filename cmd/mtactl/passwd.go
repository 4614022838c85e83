package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"mtad.dev/mta/auth"
)

// cmdPasswd edits the SMTP AUTH password file (DATA/passwd unless -file): adds a
// user or changes a password (read twice from the terminal, or once from standard
// input with -stdin), deletes a user (-delete) or lists them (-list). The file is
// replaced atomically, mode 0600; a running mtad reads it on reload.
func cmdPasswd(a *app, args []string) int {
	fs := flag.NewFlagSet("mtactl passwd", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fromStdin := fs.Bool("stdin", false, "read the password as one line of standard input (no prompt, no confirmation)")
	del := fs.Bool("delete", false, "delete USER")
	list := fs.Bool("list", false, "list the users (no USER)")
	file := fs.String("file", "", "password `FILE` (default: DATA/"+auth.DefaultFileName+")")
	cost := fs.Int("cost", auth.DefaultCost, fmt.Sprintf("bcrypt `cost` of the new hash (%d or more)", auth.MinCost))
	fs.Usage = func() {
		fmt.Fprintln(a.stderr, "usage: mtactl [-data DIR] passwd [-stdin] [-cost N] [-file FILE] USER")
		fmt.Fprintln(a.stderr, "       mtactl [-data DIR] passwd -delete [-file FILE] USER")
		fmt.Fprintln(a.stderr, "       mtactl [-data DIR] passwd -list [-file FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	path := *file
	if path == "" {
		path = filepath.Join(a.dataDir, auth.DefaultFileName)
	}
	if *list {
		if fs.NArg() != 0 || *del || *fromStdin {
			fs.Usage()
			return 2
		}
		s, err := auth.Load(path)
		if err != nil {
			fmt.Fprintf(a.stderr, "mtactl passwd: %v\n", err)
			return 1
		}
		weak := map[string]bool{}
		for _, u := range s.WeakUsers() {
			weak[u] = true
		}
		for _, u := range s.Users() {
			if weak[u] {
				fmt.Fprintf(a.stdout, "%s (weak hash: set the password again)\n", u)
			} else {
				fmt.Fprintln(a.stdout, u)
			}
		}
		return 0
	}
	if fs.NArg() != 1 || (*del && *fromStdin) {
		fs.Usage()
		return 2
	}
	user := fs.Arg(0)
	if err := auth.CheckUser(user); err != nil {
		fmt.Fprintf(a.stderr, "mtactl passwd: %v\n", err)
		return 2
	}
	s, err := auth.Load(path)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl passwd: %v\n", err)
		return 1
	}
	var done string
	if *del {
		if !s.Delete(user) {
			fmt.Fprintf(a.stderr, "mtactl passwd: no user %q in %s\n", user, path)
			return 1
		}
		done = user + " deleted from " + path
	} else {
		pw, err := a.readPassword(*fromStdin, user)
		if err != nil {
			fmt.Fprintf(a.stderr, "mtactl passwd: %v\n", err)
			return 1
		}
		existed, err := s.Set(user, pw, *cost)
		if err != nil {
			fmt.Fprintf(a.stderr, "mtactl passwd: %v\n", err)
			return 1
		}
		done = user + " added to " + path
		if existed {
			done = "password of " + user + " changed in " + path
		}
	}
	if err := s.WriteFile(path); err != nil {
		fmt.Fprintf(a.stderr, "mtactl passwd: %v\n", err)
		return 1
	}
	fmt.Fprintf(a.stdout, "mtactl passwd: %s\n", done)
	return 0
}

// readPassword reads the new password: one line of standard input with -stdin,
// else twice from the terminal with echo off.
func (a *app) readPassword(fromStdin bool, user string) (string, error) {
	r := bufio.NewReader(a.stdin)
	if fromStdin {
		return readLine(r)
	}
	if !a.tty {
		return "", errors.New("standard input is not a terminal: use -stdin to read the password from it")
	}
	restore, err := echoOff(a.stdin)
	if err != nil {
		// Never prompt with echo on: the password would show on the screen.
		return "", fmt.Errorf("cannot turn terminal echo off (%w): use -stdin", err)
	}
	defer restore()
	fmt.Fprintf(a.stderr, "New password for %s: ", user)
	pw, err := readLine(r)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(a.stderr, "Again: ")
	again, err := readLine(r)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords differ; nothing changed")
	}
	return pw, nil
}

// readLine reads one line without its line end; a last line without one counts.
func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		if err == io.EOF {
			return "", errors.New("no password on standard input")
		}
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// echoOff turns the terminal's echo off with stty (the portable way without a
// terminal library) and returns the function that turns it back on.
func echoOff(in io.Reader) (func(), error) {
	f, ok := in.(*os.File)
	if !ok {
		return nil, errors.New("standard input is not a file")
	}
	stty := func(arg string) error {
		cmd := exec.Command("stty", arg)
		cmd.Stdin = f
		return cmd.Run()
	}
	if err := stty("-echo"); err != nil {
		return nil, err
	}
	return func() { _ = stty("echo") }, nil
}
