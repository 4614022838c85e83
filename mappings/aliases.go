package mappings

import (
	"fmt"
	"strings"
)

// Aliases is the compiled alias table (names case-insensitive). gob-encodable via
// MarshalBinary/UnmarshalBinary.
type Aliases struct {
	list   []alias
	byName map[string]int32 // lower-cased name -> index in list
}

type alias struct {
	name    string
	targets []string
	src     string
}

// CompileAliases builds the table; errors are *SourceError (duplicate aliases found,
// no equivalence addresses for alias ...).
func CompileAliases(src []AliasSource) (*Aliases, []error) {
	a := &Aliases{byName: make(map[string]int32, len(src))}
	var errs []error
	for _, as := range src {
		name := strings.TrimSpace(as.Name)
		if name == "" {
			errs = append(errs, &SourceError{Src: as.Src, Msg: "bad equivalence for alias: empty alias name"})
			continue
		}
		key := strings.ToLower(name)
		if first, dup := a.byName[key]; dup {
			errs = append(errs, &SourceError{Src: as.Src,
				Msg: fmt.Sprintf("duplicate aliases found: %q (first at %s)", name, a.list[first].src)})
			continue
		}
		if len(as.Targets) == 0 {
			errs = append(errs, &SourceError{Src: as.Src,
				Msg: fmt.Sprintf("no equivalence addresses for alias: %q", name)})
			continue
		}
		targets := make([]string, len(as.Targets))
		bad := false
		for i, t := range as.Targets {
			t = strings.TrimSpace(t)
			if t == "" {
				errs = append(errs, &SourceError{Src: as.Src,
					Msg: fmt.Sprintf("bad equivalence for alias: %q: target %d is %q", name, i+1, as.Targets[i])})
				bad = true
				break
			}
			targets[i] = t
		}
		if bad {
			continue
		}
		a.byName[key] = int32(len(a.list))
		a.list = append(a.list, alias{name: name, targets: targets, src: as.Src})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return a, nil
}

// Lookup returns an alias's targets. The slice is shared: do not modify it.
func (a *Aliases) Lookup(name string) (targets []string, src string, ok bool) {
	if a == nil {
		return nil, "", false
	}
	i, ok := a.byName[name]
	if !ok {
		i, ok = a.byName[strings.ToLower(name)]
	}
	if !ok {
		return nil, "", false
	}
	al := &a.list[i]
	return al.targets, al.src, true
}

// Len is the number of aliases.
func (a *Aliases) Len() int {
	if a == nil {
		return 0
	}
	return len(a.list)
}

// Names lists the alias names in configuration order (for cnbuild -show).
func (a *Aliases) Names() []string {
	if a == nil {
		return nil
	}
	out := make([]string, len(a.list))
	for i := range a.list {
		out[i] = a.list[i].name
	}
	return out
}
