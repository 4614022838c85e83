package daemon

import (
	"context"
	"path/filepath"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/compiler"
	"mtad.dev/mta/filter"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/smtpserver"
)

// The Sieve filters (package filter): the filters of acceptance go into the
// intake rules of each image; users' filters into the local channel's Maildir
// program. The compiled scripts (filter.Cache) and the vacation memory live
// as long as the daemon, across reloads.

// policyFor is newPolicy with the image's filters of acceptance and its sender
// authentication.
func (d *Daemon) policyFor(img *compiler.Image) *smtpserver.Policy {
	p := newPolicy(img)
	if sys := d.systemFilter(img); sys.Active() {
		p.Intake.Filter = sys
	}
	return d.withAuth(p, img)
}

// filterSettings are the options every filter of an image runs with.
func filterSettings(img *compiler.Image) filter.Settings {
	s := filter.Settings{
		Hostname:      hostname(img),
		Postmaster:    img.Options.ReturnAddress,
		SubaddressSep: img.Options.SubaddressChar,
		AddResent:     img.Options.SieveRedirectAddResent,
		LogFilter:     img.Options.LogFilter,
		Discard:       img.Options.FilterDiscard,
		Jettison:      img.Options.FilterJettison,
	}
	if s.Postmaster == "" {
		s.Postmaster = "postmaster@" + s.Hostname
	}
	if _, ok := img.Channel(compiler.FilterDiscardChannel); ok {
		s.DiscardChannel = compiler.FilterDiscardChannel
	}
	return s
}

func (d *Daemon) filterDeps() filter.Deps {
	return filter.Deps{Scripts: d.filters, Submit: d.submitFiltered, MailLog: d.mlog, Log: d.log.With("component", "filter")}
}

// systemFilter is the image's filters of acceptance: imta.filter, compiled
// from the image, and the channels' filter keywords.
func (d *Daemon) systemFilter(img *compiler.Image) *filter.System {
	sys := &filter.System{Deps: d.filterDeps(), Settings: filterSettings(img), ConfigDir: d.opts.ConfigDir,
		Channels: map[string]filter.ChannelFilters{}, Users: d.users(filterSettings(img))}
	if src := img.MTAFilter; src != nil {
		sc, err := filter.Compile(src.Name, []byte(src.Text), filter.LevelSystem)
		if err != nil {
			// cnbuild compiled it; only another version of mtad could disagree.
			d.log.Error("imta.filter in the image does not compile; messages pass unfiltered", "err", err)
		}
		sys.MTA = sc
	}
	for i := range img.Channels {
		c := &img.Channels[i]
		if c.SourceFilter != "" || c.DestinationFilter != "" || c.FileInto != "" || c.UserFilter != "" {
			sys.Channels[c.Name] = filter.ChannelFilters{Source: c.SourceFilter, Destination: c.DestinationFilter,
				FileInto: c.FileInto, User: c.UserFilter}
		}
	}
	return sys
}

// users is the users' filters under an image's settings.
func (d *Daemon) users(s filter.Settings) *filter.Users {
	return &filter.Users{Deps: d.filterDeps(), Settings: s, ConfigDir: d.opts.ConfigDir, Vacations: d.vacations}
}

// maildirSpec adds the local channel's filter settings to its program's spec.
func maildirSpec(img *compiler.Image, c *compiler.ChannelConfig) programSpec {
	spec := programSpec{kind: maildirProgram, hostname: img.Hostname()}
	spec.userFilter, spec.folderFromDetail = c.UserFilter, c.FileInto != ""
	if spec.userFilter != "" {
		spec.filters = filterSettings(img)
	}
	return spec
}

// newMaildir builds the local channel's program: folders by subaddress when the
// channel has a fileinto template, users' filters when it has a filter
// URL-pattern.
func (d *Daemon) newMaildir(spec programSpec) channels.Program {
	root := filepath.Join(d.opts.DataDir, "mailboxes")
	if spec.userFilter == "" && !spec.folderFromDetail {
		return channels.NewMaildir(root, spec.hostname)
	}
	o := channels.MaildirOptions{FolderFromDetail: spec.folderFromDetail}
	if spec.userFilter != "" {
		o.Filter = d.users(spec.filters).ForChannel(spec.userFilter)
	}
	return channels.NewMaildirWithOptions(root, spec.hostname, o)
}

// submitFiltered queues what a filter sends: a notice or vacation answer like
// the job controller's notices, a redirected copy as a new message to its
// address.
func (d *Daemon) submitFiltered(ctx context.Context, s *filter.Submission) error {
	kind := intake.Redirect
	if s.Notice {
		kind = intake.Notice
	}
	return d.submitVia(ctx, kind, s.From, s.To, s.Notify, s.Content)
}
