package filter

import (
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"mtad.dev/mta/channels"
)

// Location is where a filter URL says a script is.
type Location struct {
	// Given is the URL as configured (after substitutions), URL the same with
	// surrounding quotes stripped.
	Given, URL string
	// Scheme is "file", "data" or "ssrd".
	Scheme string
	// Ident is an ssrd: URL's identifier (the product names a directory entry
	// with it; we name a file by it).
	Ident string
	// Path is the file of a file: or ssrd: URL.
	Path string
	// Name is what positions in the script carry: the file's path relative to
	// the configuration directory when it is inside it, the absolute path
	// otherwise, or the name given for a data: URL.
	Name string
	// Data is a data: URL's script.
	Data []byte
}

// UserDir is the directory, under the configuration directory, of the files
// ssrd: URLs name. The product keeps users' server-side rules in the directory
// service (LDAP's mailSieveRuleSource); mtad has no directory, so a user's rules
// are the file sieve/<mailbox>.sieve, mailbox being the identifier's local part,
// lower-cased and without its subaddress, as the local channel names mailboxes.
const UserDir = "sieve"

// Locate resolves a filter URL against the configuration directory
// (IMTA_TABLE). The schemes:
//
//	file:IMTA_TABLE:name   the file name in the configuration directory
//	file:name              the same (a relative name)
//	file:///path, file:/path, file://localhost/path   an absolute path
//	data:[type][;base64],script   the script itself; it is not percent-decoded,
//	                       as the product's documented scriptlets are written
//	                       plainly (data:,require "fileinto"; fileinto "Junk";)
//	ssrd:identifier        the file UserDir/<mailbox>.sieve (see UserDir)
//
// name is the name a data: script's positions carry ("" gives "data:").
func Locate(url, configDir, name string) (Location, error) {
	loc := Location{Given: url, URL: strings.Trim(strings.TrimSpace(url), `"`)}
	scheme, rest, ok := strings.Cut(loc.URL, ":")
	if !ok {
		return loc, fmt.Errorf("filter URL %q has no scheme (file:, data: or ssrd:)", url)
	}
	loc.Scheme = strings.ToLower(scheme)
	switch loc.Scheme {
	case "data":
		return locateData(loc, rest, name)
	case "file":
		path, err := filePath(rest, configDir)
		if err != nil {
			return loc, fmt.Errorf("filter URL %q: %w", url, err)
		}
		loc.Path = path
	case "ssrd":
		loc.Ident = strings.TrimSpace(rest)
		mbox, st := channels.MailboxOf(loc.Ident)
		if st != nil {
			return loc, fmt.Errorf("filter URL %q: identifier %q names no mailbox", url, loc.Ident)
		}
		if configDir == "" {
			return loc, fmt.Errorf("filter URL %q: ssrd: needs a configuration directory", url)
		}
		loc.Path = filepath.Join(configDir, UserDir, mbox+".sieve")
	default:
		return loc, fmt.Errorf("filter URL %q: unsupported scheme %q (file:, data: or ssrd:)", url, scheme)
	}
	loc.Name = loc.Path
	if rel, err := filepath.Rel(configDir, loc.Path); configDir != "" && err == nil && !strings.HasPrefix(rel, "..") {
		loc.Name = filepath.ToSlash(rel)
	}
	return loc, nil
}

// locateData decodes a data: URL (RFC 2397's syntax).
func locateData(loc Location, rest, name string) (Location, error) {
	meta, data, ok := strings.Cut(rest, ",")
	if !ok {
		return loc, fmt.Errorf("filter URL %q: a data: URL needs a comma before the script", loc.Given)
	}
	loc.Name = name
	if loc.Name == "" {
		loc.Name = "data:"
	}
	loc.Data = []byte(data)
	if strings.HasSuffix(strings.ToLower(meta), ";base64") {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
		if err != nil {
			return loc, fmt.Errorf("filter URL %q: bad base64: %w", loc.Given, err)
		}
		loc.Data = b
	}
	return loc, nil
}

// filePath resolves the part of a file: URL after "file:".
func filePath(rest, configDir string) (string, error) {
	switch {
	case strings.HasPrefix(rest, "//"):
		host, path, _ := strings.Cut(rest[2:], "/")
		if host != "" && !strings.EqualFold(host, "localhost") {
			return "", fmt.Errorf("host %q: only local files can be read", host)
		}
		return "/" + path, nil
	case strings.HasPrefix(rest, "/"):
		return filepath.Clean(rest), nil
	}
	if tag, name, ok := strings.Cut(rest, ":"); ok {
		if !strings.EqualFold(tag, "IMTA_TABLE") {
			return "", fmt.Errorf("unknown directory tag %q (IMTA_TABLE: is the configuration directory)", tag)
		}
		rest = name
	}
	if configDir == "" {
		return "", errors.New("a relative file needs a configuration directory")
	}
	return filepath.Join(configDir, rest), nil
}

// Trace is what `mtactl test -rewrite -filter -debug` prints about finding a
// script: the lines the product prints (the URL opened, the URL with quotes
// stripped, its kind, the identifier), and the file it became.
func (l Location) Trace() []string {
	out := []string{"mmc_open_url called to open " + l.Given, "   URL with quotes stripped: " + l.URL}
	switch l.Scheme {
	case "ssrd":
		out = append(out, "Determined to be a SSRD URL.", "   Identifier: "+l.Ident, "   File: "+l.Path)
	case "file":
		out = append(out, "Determined to be a FILE URL.", "   File: "+l.Path)
	case "data":
		out = append(out, "Determined to be a DATA URL.")
	}
	return out
}
