package compiler

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"mtad.dev/mta/cnf"
)

// Pool is one [POOL=NAME] section of job_controller.cnf.
type Pool struct {
	Name     string
	JobLimit int // JOB_LIMIT: most simultaneous jobs of the pool's channels
	Src      string
}

// Window is a daily delivery window "HH:MM-HH:MM" in minutes after midnight. The
// zero Window (Set false) is "no window": always open. End < Start wraps over
// midnight; End == Start means the whole day (the product's documentation does not
// give the grammar; an empty window would be a silent way to stop a channel).
type Window struct {
	Start, End int
	Set        bool
}

// String renders the window as written in job_controller.cnf.
func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// Contains reports whether t's local time of day is inside the window.
func (w Window) Contains(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	switch {
	case !w.Set || w.Start == w.End:
		return true
	case w.Start < w.End:
		return m >= w.Start && m < w.End
	default:
		return m >= w.Start || m < w.End
	}
}

// ParseWindow parses "HH:MM-HH:MM" (24:00 allowed as an end).
func ParseWindow(s string) (Window, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Window{}, fmt.Errorf("%q is not a window HH:MM-HH:MM", s)
	}
	start, err1 := parseClock(a, false)
	end, err2 := parseClock(b, true)
	if err1 != nil || err2 != nil {
		return Window{}, fmt.Errorf("%q is not a window HH:MM-HH:MM", s)
	}
	if end == 24*60 {
		end = 0
	}
	return Window{Start: start, End: end, Set: true}, nil
}

func parseClock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(m) != 2 || len(h) == 0 || len(h) > 2 {
		return 0, fmt.Errorf("bad time")
	}
	hh, err := strconv.Atoi(h)
	if err != nil {
		return 0, err
	}
	mm, err := strconv.Atoi(m)
	if err != nil {
		return 0, err
	}
	if hh == 24 && mm == 0 && end {
		return 24 * 60, nil
	}
	if hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("bad time")
	}
	return hh*60 + mm, nil
}

// ChannelSection is one [CHANNEL=pattern] section of job_controller.cnf.
type ChannelSection struct {
	Pattern       string // exact name, or with * wildcards (tcp_*)
	MasterCommand string
	SlaveCommand  string
	JobLimit      int // 0 = not given
	ThreadDepth   int // 0 = not given
	MaxLifeAge    time.Duration
	MaxLifeConns  int
	// Delivery windows per class (URGENT_DELIVERY ...); unset means any time.
	Windows [NumPriorities]Window
	Src     string
}

// Matches reports whether the section's pattern matches a channel name.
func (s *ChannelSection) Matches(channel string) bool {
	ok, err := path.Match(strings.ToLower(s.Pattern), strings.ToLower(channel))
	return err == nil && ok
}

// JobConfig is job_controller.cnf, typed. The first pool is the default pool. The
// product's documentation gives no firm default for MAX_MESSAGES or SYNCH_TIME; we use
// 100000 and 4 hours, the product's usual values as far as we know.
type JobConfig struct {
	TCPPort          int    // TCP_PORT, default 27442
	InterfaceAddress string // INTERFACE_ADDRESS
	Secret           string
	Debug            int
	MaxMessages      int           // MAX_MESSAGES, default 100000
	SynchTime        time.Duration // SYNCH_TIME minutes, at least 30 min; default 4 h
	SlaveCommand     string
	MaxLifeAge       time.Duration
	MaxLifeConns     int
	Pools            []Pool
	Channels         []ChannelSection
	Raw              map[string]string
}

// Pool returns a pool by name (case-insensitive).
func (j *JobConfig) Pool(name string) (Pool, bool) {
	for _, p := range j.Pools {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Pool{}, false
}

// ChannelSection returns the section that applies to a channel: an exact name wins,
// then the wildcard pattern with the longest literal text, then file order. The
// product's documentation does not say which of several matching sections applies;
// we take the most specific.
func (j *JobConfig) ChannelSection(channel string) (*ChannelSection, bool) {
	var best *ChannelSection
	bestScore := -1
	for i := range j.Channels {
		s := &j.Channels[i]
		if !s.Matches(channel) {
			continue
		}
		score := len(strings.ReplaceAll(s.Pattern, "*", ""))
		if !strings.ContainsAny(s.Pattern, "*?[") {
			score = 1 << 20
		}
		if score > bestScore {
			best, bestScore = s, score
		}
	}
	return best, best != nil
}

var jobGlobalTable = map[string]optKind{
	"TCP_PORT": optInt, "INTERFACE_ADDRESS": optString, "SECRET": optString,
	"DEBUG": optInt, "MAX_MESSAGES": optInt, "SYNCH_TIME": optInt,
	"SLAVE_COMMAND": optString, "MASTER_COMMAND": optString, "MAX_LIFE_AGE": optInt,
	"MAX_LIFE_CONNS": optInt, "JOB_LIMIT": optInt, "THREAD_DEPTH": optInt,
	"URGENT_DELIVERY": optString, "NORMAL_DELIVERY": optString,
	"NONURGENT_DELIVERY": optString, "COMMAND": optString, "TIME": optString,
	"CAPACITY": optInt, "MASTER_JOB": optString, "SLAVE_JOB": optString,
}

// defaultJobLimit is the JOB_LIMIT of a pool that gives none. The product's
// documentation gives no default; 10 is the limit of its shipped pools.
const defaultJobLimit = 10

// DefaultJobConfig is used when there is no job_controller.cnf: one pool DEFAULT with
// job_limit 10 (our choice; see defaultJobLimit).
func DefaultJobConfig() JobConfig {
	return JobConfig{TCPPort: 27442, MaxMessages: 100000, SynchTime: 4 * time.Hour,
		Pools: []Pool{{Name: "DEFAULT", JobLimit: defaultJobLimit}}, Raw: map[string]string{}}
}

func readJobConfig(f *cnf.SectionFile, errs, warns *cnf.ErrorList) JobConfig {
	j := DefaultJobConfig()
	if f == nil {
		return j
	}
	j.Pools = nil
	g := newOptionReader("job_controller.cnf", jobGlobalTable, errs, warns)
	g.noEffect = optionNoEffectFor(jobController)
	g.read(f.Global)
	g.int("TCP_PORT", &j.TCPPort)
	g.str("INTERFACE_ADDRESS", &j.InterfaceAddress)
	g.str("SECRET", &j.Secret)
	g.int("DEBUG", &j.Debug)
	g.int("MAX_MESSAGES", &j.MaxMessages)
	if v, ok := g.ints["SYNCH_TIME"]; ok {
		// The product's documentation: minimum 30 minutes; smaller values are raised.
		j.SynchTime = max(time.Duration(v)*time.Minute, 30*time.Minute)
	}
	g.str("SLAVE_COMMAND", &j.SlaveCommand)
	if v, ok := g.ints["MAX_LIFE_AGE"]; ok {
		j.MaxLifeAge = time.Duration(v) * time.Second
	}
	g.int("MAX_LIFE_CONNS", &j.MaxLifeConns)
	j.Raw = g.raw
	globalJobLimit := defaultJobLimit
	g.int("JOB_LIMIT", &globalJobLimit)
	var globalWindows [NumPriorities]Window
	for p, name := range windowOptions {
		if v, ok := g.strs[name]; ok {
			if w, err := ParseWindow(v); err == nil {
				globalWindows[p] = w
			} else {
				*errs = append(*errs, &cnf.Error{Pos: optPos(f.Global, name), Msg: fmt.Sprintf("bad value for option %s: %v", name, err)})
			}
		}
	}

	seenPool := map[string]cnf.Pos{}
	for _, s := range f.Sections {
		r := newOptionReader("job_controller.cnf ["+s.Type+"] section", jobGlobalTable, errs, warns)
		r.noEffect = optionNoEffectFor(jobController)
		r.read(s.Options)
		switch s.Type {
		case "POOL", "QUEUE":
			name := strings.TrimSpace(s.Value)
			if name == "" {
				*errs = append(*errs, &cnf.Error{Pos: s.Pos, Msg: "pool section without a name"})
				continue
			}
			if first, dup := seenPool[strings.ToUpper(name)]; dup {
				*errs = append(*errs, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("duplicate pool %q (first at %s)", name, first)})
				continue
			}
			seenPool[strings.ToUpper(name)] = s.Pos
			if len(name) > maxPoolNameLen {
				*errs = append(*errs, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("pool name %q is longer than %d characters", name, maxPoolNameLen)})
			}
			p := Pool{Name: name, JobLimit: globalJobLimit, Src: s.Pos.String()}
			r.int("JOB_LIMIT", &p.JobLimit)
			r.int("CAPACITY", &p.JobLimit) // SIMS [QUEUE=] spelling
			if p.JobLimit < 1 {
				*errs = append(*errs, &cnf.Error{Pos: optPos(s.Options, "JOB_LIMIT"), Msg: fmt.Sprintf("bad value for option JOB_LIMIT: pool %s needs a job_limit of at least 1", name)})
			}
			j.Pools = append(j.Pools, p)
		case "CHANNEL":
			cs := ChannelSection{Pattern: strings.TrimSpace(s.Value), SlaveCommand: j.SlaveCommand,
				MaxLifeAge: j.MaxLifeAge, MaxLifeConns: j.MaxLifeConns, Windows: globalWindows, Src: s.Pos.String()}
			if _, err := path.Match(cs.Pattern, ""); err != nil || cs.Pattern == "" {
				*errs = append(*errs, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("bad channel pattern %q", s.Value)})
				continue
			}
			g.str("MASTER_COMMAND", &cs.MasterCommand)
			r.str("MASTER_COMMAND", &cs.MasterCommand)
			r.str("SLAVE_COMMAND", &cs.SlaveCommand)
			r.int("JOB_LIMIT", &cs.JobLimit)
			g.int("THREAD_DEPTH", &cs.ThreadDepth)
			r.int("THREAD_DEPTH", &cs.ThreadDepth)
			if v, ok := r.ints["MAX_LIFE_AGE"]; ok {
				cs.MaxLifeAge = time.Duration(v) * time.Second
			}
			r.int("MAX_LIFE_CONNS", &cs.MaxLifeConns)
			for p, name := range windowOptions {
				if v, ok := r.strs[name]; ok {
					w, err := ParseWindow(v)
					if err != nil {
						*errs = append(*errs, &cnf.Error{Pos: optPos(s.Options, name), Msg: fmt.Sprintf("bad value for option %s: %v", name, err)})
						continue
					}
					cs.Windows[p] = w
				}
			}
			j.Channels = append(j.Channels, cs)
		case "PERIODIC_JOB":
			// Deprecated in the product; accepted and ignored.
		default:
			*warns = append(*warns, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("unknown section type [%s=%s] in job_controller.cnf (ignored)", s.Type, s.Value)})
		}
	}
	if len(j.Pools) == 0 {
		*errs = append(*errs, &cnf.Error{Pos: cnf.Pos{File: "job_controller.cnf", Line: 1}, Msg: "no [POOL=...] section: at least one pool is required (the first is the default pool)"})
		j.Pools = []Pool{{Name: "DEFAULT", JobLimit: defaultJobLimit}}
	}
	return j
}

var windowOptions = [NumPriorities]string{
	Urgent: "URGENT_DELIVERY", Normal: "NORMAL_DELIVERY", Nonurgent: "NONURGENT_DELIVERY",
}

func optPos(opts []cnf.Option, name string) cnf.Pos {
	for _, o := range opts {
		if strings.EqualFold(o.Name, name) {
			return o.Pos
		}
	}
	if len(opts) > 0 {
		return opts[0].Pos
	}
	return cnf.Pos{}
}

// Service is one [SERVICE=NAME] section of dispatcher.cnf.
type Service struct {
	Name             string
	Port             []int
	InterfaceAddress string // "" = all interfaces
	Image            string
	LogFile          string
	Parameter        string
	MinProcs         int // default 0
	MaxProcs         int // default 5
	MinConns         int // default 5
	MaxConns         int // default 20
	MaxShutdown      int // default 2
	MaxLifeTime      time.Duration
	MaxLifeConns     int
	MaxIdleTime      time.Duration
	MaxHandoffs      int // default 5
	Backlog          int // default MaxConns*MaxProcs, at least 5
	Debug            int
	DNSVerifyDomain  []string // at most 5
	EnableRBL        bool
	// TLSCertificate and TLSKey (TLS_CERTIFICATE, TLS_KEY: our extensions) are PEM
	// files (relative paths are relative to the configuration directory); when both
	// are set the service offers STARTTLS.
	TLSCertificate string
	TLSKey         string
	Src            string
}

// MaxConnections is the service's simultaneous connection limit (MAX_PROCS × MAX_CONNS).
func (s *Service) MaxConnections() int { return s.MaxProcs * s.MaxConns }

// DispatcherConfig is dispatcher.cnf, typed. With no dispatcher.cnf there are no
// services (the product's documentation does not say what then; the daemon decides,
// and our shipped configurations all have one).
type DispatcherConfig struct {
	Services []Service
	Raw      map[string]string
}

// Service returns a service by name (case-insensitive).
func (d *DispatcherConfig) Service(name string) (*Service, bool) {
	for i := range d.Services {
		if strings.EqualFold(d.Services[i].Name, name) {
			return &d.Services[i], true
		}
	}
	return nil, false
}

var dispatcherTable = map[string]optKind{
	"PORT": optString, "INTERFACE_ADDRESS": optString, "IMAGE": optString,
	"LOGFILE": optString, "PARAMETER": optString, "MIN_PROCS": optInt, "MAX_PROCS": optInt,
	"MIN_CONNS": optInt, "MAX_CONNS": optInt, "MAX_SHUTDOWN": optInt,
	"MAX_LIFE_TIME": optInt, "MAX_LIFE_CONNS": optInt, "MAX_IDLE_TIME": optInt,
	"MAX_HANDOFFS": optInt, "BACKLOG": optInt, "DEBUG": optInt,
	"DNS_VERIFY_DOMAIN": optString, "ENABLE_RBL": optBool, "HISTORICAL_TIME": optInt,
	"IDENT": optInt, "STACKSIZE": optInt, "USER": optString,
	"TLS_CERTIFICATE": optString, "TLS_KEY": optString,
}

const maxDNSVerifyDomains = 5

func readDispatcher(f *cnf.SectionFile, errs, warns *cnf.ErrorList) DispatcherConfig {
	d := DispatcherConfig{Raw: map[string]string{}}
	if f == nil {
		return d
	}
	g := newOptionReader("dispatcher.cnf", dispatcherTable, errs, warns)
	g.read(f.Global)
	d.Raw = g.raw
	seen := map[string]cnf.Pos{}
	for _, s := range f.Sections {
		if s.Type != "SERVICE" && s.Type != "DISPATCHER" {
			*warns = append(*warns, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("unknown section type [%s=%s] in dispatcher.cnf (ignored)", s.Type, s.Value)})
			continue
		}
		if s.Type == "DISPATCHER" {
			continue
		}
		name := strings.TrimSpace(s.Value)
		if first, dup := seen[strings.ToUpper(name)]; dup {
			*errs = append(*errs, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("duplicate service %q (first at %s)", name, first)})
			continue
		}
		seen[strings.ToUpper(name)] = s.Pos
		r := newOptionReader("dispatcher.cnf [SERVICE] section", dispatcherTable, errs, warns)
		r.read(s.Options)
		sv := Service{Name: name, MaxProcs: 5, MinConns: 5, MaxConns: 20, MaxShutdown: 2,
			MaxLifeTime: 86400 * time.Second, MaxLifeConns: 100, MaxHandoffs: 5, Src: s.Pos.String()}
		for _, rd := range []*optionReader{g, r} {
			rd.str("INTERFACE_ADDRESS", &sv.InterfaceAddress)
			rd.str("IMAGE", &sv.Image)
			rd.str("LOGFILE", &sv.LogFile)
			rd.str("PARAMETER", &sv.Parameter)
			rd.int("MIN_PROCS", &sv.MinProcs)
			rd.int("MAX_PROCS", &sv.MaxProcs)
			rd.int("MIN_CONNS", &sv.MinConns)
			rd.int("MAX_CONNS", &sv.MaxConns)
			rd.int("MAX_SHUTDOWN", &sv.MaxShutdown)
			if v, ok := rd.ints["MAX_LIFE_TIME"]; ok {
				sv.MaxLifeTime = time.Duration(v) * time.Second
			}
			rd.int("MAX_LIFE_CONNS", &sv.MaxLifeConns)
			if v, ok := rd.ints["MAX_IDLE_TIME"]; ok {
				sv.MaxIdleTime = time.Duration(v) * time.Second
			}
			rd.int("MAX_HANDOFFS", &sv.MaxHandoffs)
			rd.int("BACKLOG", &sv.Backlog)
			rd.int("DEBUG", &sv.Debug)
			rd.bool("ENABLE_RBL", &sv.EnableRBL)
			rd.str("TLS_CERTIFICATE", &sv.TLSCertificate)
			rd.str("TLS_KEY", &sv.TLSKey)
		}
		// DNS_VERIFY_DOMAIN may be given up to five times; collect every occurrence.
		for _, opts := range [][]cnf.Option{f.Global, s.Options} {
			for _, o := range opts {
				if strings.EqualFold(o.Name, "DNS_VERIFY_DOMAIN") {
					sv.DNSVerifyDomain = append(sv.DNSVerifyDomain, strings.TrimSpace(o.Value))
					if len(sv.DNSVerifyDomain) > maxDNSVerifyDomains {
						*errs = append(*errs, &cnf.Error{Pos: o.Pos, Msg: fmt.Sprintf("too many DNS_VERIFY_DOMAIN values for service %s (at most %d)", name, maxDNSVerifyDomains)})
					}
				}
			}
		}
		portText, ok := r.strs["PORT"]
		if !ok {
			portText, ok = g.strs["PORT"]
		}
		if !ok || strings.TrimSpace(portText) == "" {
			*errs = append(*errs, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("service %s has no PORT", name)})
		}
		for _, p := range strings.FieldsFunc(portText, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			n, err := ParseInt(p)
			if err != nil || n < 0 || n > 65535 {
				*errs = append(*errs, &cnf.Error{Pos: optPos(s.Options, "PORT"), Msg: fmt.Sprintf("bad value for option PORT: %q is not a port number", p)})
				continue
			}
			sv.Port = append(sv.Port, n)
		}
		if a := sv.InterfaceAddress; a != "" && !strings.EqualFold(a, "ANY") && !strings.EqualFold(a, "ALL") {
			if _, err := netip.ParseAddr(a); err != nil {
				*errs = append(*errs, &cnf.Error{Pos: optPos(s.Options, "INTERFACE_ADDRESS"), Msg: fmt.Sprintf("bad value for option INTERFACE_ADDRESS: %q is not an IP address", a)})
			}
		} else {
			sv.InterfaceAddress = ""
		}
		if sv.MaxProcs < 1 || sv.MaxConns < 1 {
			*errs = append(*errs, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("service %s: MAX_PROCS and MAX_CONNS must be at least 1", name)})
		}
		if sv.Backlog == 0 {
			sv.Backlog = max(sv.MaxConns*sv.MaxProcs, 5)
		}
		if (sv.TLSCertificate == "") != (sv.TLSKey == "") {
			*errs = append(*errs, &cnf.Error{Pos: s.Pos, Msg: fmt.Sprintf("service %s: TLS_CERTIFICATE and TLS_KEY go together", name)})
		}
		d.Services = append(d.Services, sv)
	}
	return d
}
