package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"mtad.dev/mta/cnf"
	"mtad.dev/mta/compiler"
	"mtad.dev/mta/examples"
)

func main() {
	os.Exit(runIO(programArgs(os.Args[0], os.Args[1:], os.Getenv), os.Stdin, isTerminal(os.Stdin), os.Stdout, os.Stderr, time.Now))
}

// run is main without the process: tests call it in-process. Standard input is empty.
func run(args []string, stdout, stderr io.Writer) int {
	return runIO(args, strings.NewReader(""), false, stdout, stderr, time.Now)
}

// app is one invocation's context: the global flags and the streams.
type app struct {
	configDir string // "" = the embedded default configuration
	dataDir   string
	stdin     io.Reader
	tty       bool // stdin is a terminal: prompt instead of echoing
	stdout    io.Writer
	stderr    io.Writer
	now       func() time.Time
}

// command runs one subcommand with the arguments after its name; it returns the
// exit status.
type command struct {
	run   func(a *app, args []string) int
	usage string
}

func commands() map[string]command {
	return map[string]command{
		"cnbuild":  {cmdCnbuild, "cnbuild [-check] [-show]: compile the configuration into DIR/" + compiler.ImageName},
		"passwd":   {cmdPasswd, "passwd [-stdin] [-delete] [-list] USER: edit the SMTP AUTH password file DATA/passwd"},
		"test":     {cmdTest, "test -rewrite|-mapping|-match ...: try addresses, mapping tables, patterns"},
		"version":  {cmdVersionAll, "version: program versions, the compiled image's header and the running mtad's"},
		"qm":       {cmdQm, "qm SUBCOMMAND ...: the queue manager (directory, summarize, view, hold, release, delete, return, run, stop, start ...)"},
		"reload":   {cmdReload, "reload: make mtad load the configuration again"},
		"log":      {cmdLog, "log -reopen: make mtad reopen mail.log"},
		"counters": {cmdCounters, "counters [-clear]: per-channel counters (= qm counters)"},
		"process":  {cmdProcess, "process: mtad's listeners and job controller jobs"},
		"cache":    {cmdCache, "cache -flush: empty mtad's DNS cache"},
		"purge":    {cmdPurge, "purge [-num=N | -day=D -hour=H] [PATTERN]: delete old debug transcripts in DATA/log"},
		"spfquery": {cmdSpfquery, "spfquery [-i IP] [-s SENDER] [-h HELO] [-e RESULT] [-v] DOMAIN: check a domain's SPF policy in DNS"},
		"sendmail": {cmdSendmail, "sendmail [-t] [-i] [-f ADDR] [-F NAME] [-v] [RCPT...]: submit a message read from stdin (also as argv[0] sendmail)"},
	}
}

func runIO(args []string, stdin io.Reader, tty bool, stdout, stderr io.Writer, now func() time.Time) int {
	a := &app{stdin: stdin, tty: tty, stdout: stdout, stderr: stderr, now: now}
	fs := flag.NewFlagSet("mtactl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.configDir, "config", "", "configuration `DIR` (default: the configuration built into mtactl)")
	fs.StringVar(&a.dataDir, "data", "./mta-data", "data `DIR` (queue, logs)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mtactl [-config DIR] [-data DIR] COMMAND [options]")
		fmt.Fprintln(stderr, "commands:")
		cmds := commands()
		names := make([]string, 0, len(cmds))
		for n := range cmds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stderr, "  %s\n", cmds[n].usage)
		}
		fmt.Fprintln(stderr, "global options:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	name := fs.Arg(0)
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "mtactl: unknown command %q\n", name)
		fs.Usage()
		return 2
	}
	if name != "sendmail" {
		if err := dropGroup(); err != nil {
			fmt.Fprintf(stderr, "mtactl: cannot give up the setgid group: %v\n", err)
			return 1
		}
	}
	return cmd.run(a, fs.Args()[1:])
}

// imagePath is where cnbuild writes and the test commands read the image.
func (a *app) imagePath() string {
	if a.configDir == "" {
		return ""
	}
	return filepath.Join(a.configDir, compiler.ImageName)
}

// configName names the configuration in messages.
func (a *app) configName() string {
	if a.configDir == "" {
		return "the built-in configuration"
	}
	return a.configDir
}

// check parses and checks the text configuration.
func (a *app) check() (compiler.Report, error) {
	if a.configDir == "" {
		return compiler.CheckFS(examples.Default)
	}
	return compiler.CheckDir(a.configDir)
}

// printDiagnostics writes errors and warnings, one "FILE:LINE: message" per line,
// in file:line order.
func (a *app) printDiagnostics(r compiler.Report) {
	all := append(append(cnf.ErrorList(nil), r.Errors...), r.Warnings...)
	sortByPos(all)
	for _, e := range all {
		fmt.Fprintln(a.stderr, formatDiag(e))
	}
}

func formatDiag(e *cnf.Error) string {
	if e.Pos.File == "" {
		return e.Msg
	}
	if e.Pos.Line == 0 {
		return e.Pos.File + ": " + e.Msg
	}
	return e.Error()
}

func sortByPos(l cnf.ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Pos.File != l[j].Pos.File {
			return l[i].Pos.File < l[j].Pos.File
		}
		return l[i].Pos.Line < l[j].Pos.Line
	})
}

// textImage builds the text files, printing diagnostics on failure.
func (a *app) textImage() (*compiler.Image, bool) {
	r, err := a.check()
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return nil, false
	}
	if len(r.Errors) > 0 {
		a.printDiagnostics(r)
		fmt.Fprintf(a.stderr, "mtactl: %s has %s\n", a.configName(), plural(len(r.Errors), "error"))
		return nil, false
	}
	return r.Image, true
}

// image returns the configuration the test commands use: DIR's compiled image, or
// the text files with -noimage, when there is no image (with a note), or for the
// built-in configuration.
func (a *app) image(noimage bool) (*compiler.Image, bool) {
	if a.configDir == "" || noimage {
		return a.textImage()
	}
	path := a.imagePath()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(a.stderr, "mtactl: note: no compiled configuration %s; using the text files\n", path)
		return a.textImage()
	}
	img, err := compiler.Load(path)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return nil, false
	}
	return img, true
}

// plural says "1 error", "2 errors"; an irregular plural is given as a third word.
func plural(n int, what string, pl ...string) string {
	if n == 1 {
		return "1 " + what
	}
	if len(pl) > 0 {
		return fmt.Sprintf("%d %s", n, pl[0])
	}
	return fmt.Sprintf("%d %ss", n, what)
}
