package compiler

import (
	"go/ast"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestOptionNoEffectWarnings: an ineffective key warns at its position, unless it
// is silent or its value asks for what mtad does anyway; it is never an error.
func TestOptionNoEffectWarnings(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		body  string
		warns []string // substrings, one per expected warning, in order
	}{
		{"option.dat warns", "option.dat", "LOG_MESSAGE_ID=1\nLOG_REASON=1\n",
			[]string{"option.dat:2: option LOG_REASON is not implemented in this version; it has no effect ("}},
		{"option.dat quiet value", "option.dat", "LOG_REASON=0\nLOG_FORMAT=1\nMISSING_RECIPIENT_POLICY=1\n", nil},
		{"option.dat quiet value, b%v and case", "option.dat", "log_reason=16%0\nCOMMENT_CHARS=#;!\n", nil},
		{"option.dat silent", "option.dat", "MAX_MR_RECEIVED_LINES=5\nMAX_HEADER_BLOCK_USE=0.7\n", nil},
		{"option.dat several", "option.dat", "MM_DEBUG=5\nMAX_INTERNAL_RECEIVED_LINES=20\nRETURN_PERSONAL=Mail System\n",
			[]string{"option.dat:1: option MM_DEBUG ", "option.dat:2: option MAX_INTERNAL_RECEIVED_LINES ", "option.dat:3: option RETURN_PERSONAL "}},
		{"implemented keys do not warn", "option.dat", "MAX_LOCAL_RECEIVED_LINES=5\nMAX_RECEIVED_LINES=40\nHELD_SNDOPR=1\n", nil},
		{"channel option warns", "tcp_local_option", "ALLOW_RECIPIENTS_PER_TRANSACTION=10\nREJECT_RECIPIENTS_PER_TRANSACTION=5\n",
			[]string{"tcp_local_option:2: option REJECT_RECIPIENTS_PER_TRANSACTION is not implemented"}},
		{"channel option with an effect", "tcp_local_option", "ALLOW_TRANSACTIONS_PER_SESSION=5\nALLOW_REJECTIONS_BEFORE_DEFERRAL=3\n", nil},
		{"channel option silent", "tcp_local_option", "ALLOW_ETRNS_PER_SESSION=3\n", nil},
		{"job controller", "job_controller.cnf", "TCP_PORT=27442\nSECRET=x\nSLAVE_COMMAND=null\nMAX_MESSAGES=5\n" + basePools +
			"[CHANNEL=tcp_*]\nSLAVE_COMMAND=/usr/bin/poll\nMAX_LIFE_AGE=3600\n",
			[]string{"job_controller.cnf:4: option MAX_MESSAGES ", "job_controller.cnf:12: option SLAVE_COMMAND "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"imta.cnf": baseIMTA, tt.file: tt.body}
			if tt.file != "job_controller.cnf" {
				files["job_controller.cnf"] = basePools
			}
			r := build(t, files)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %v", messages(r.Errors))
			}
			got := messages(r.Warnings)
			if len(got) != len(tt.warns) {
				t.Fatalf("warnings %q, want %d", got, len(tt.warns))
			}
			for i, w := range tt.warns {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want %q in it", i, got[i], w)
				}
			}
		})
	}
}

// optDerived are option fields that the compiler copies into another field: they
// have an effect when that field has one.
var optDerived = map[string]string{
	"ChannelOptions.AllowTransactionsPerSession":   "ChannelConfig.TransactionLimit",
	"ChannelOptions.AllowRejectionsBeforeDeferral": "ChannelConfig.DeferralRejectLimit",
	"JobConfig.SlaveCommand":                       "ChannelSection.SlaveCommand",
	"JobConfig.MaxLifeAge":                         "ChannelSection.MaxLifeAge",
	"JobConfig.MaxLifeConns":                       "ChannelSection.MaxLifeConns",
}

// optReaderFuncs fill the option structs; what they read of them is validation
// or copying (optDerived), not an effect.
var optReaderFuncs = []string{"readOptions", "readChannelOptions", "readJobConfig", "readPipeOptions",
	"DefaultOptions", "DefaultChannelOptions", "DefaultJobConfig", "foldChannelOptionLimits"}

// optTableVars are the declarations whose key literals do not count as reading a key.
var optTableVars = []string{"optionTable", "channelOptionTable", "jobGlobalTable", "dispatcherTable", "optionNoEffects"}

// TestEveryOptionHasEffectOrIsListed keeps optionNoEffects honest. With the
// module's non-test code type-checked, a field of Options, ChannelOptions,
// JobConfig or ChannelSection has an effect when some code reads it (outside the
// functions that fill it); every key of the option tables has one when code
// names it outside the tables. Each must have an effect or be listed, and a
// listed one must not have started to have an effect.
func TestEveryOptionHasEffectOrIsListed(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the module")
	}
	reads, literals := optScanModule(t)

	listedFields := map[string]bool{}
	for _, e := range optionNoEffects {
		if e.Field != "" {
			listedFields[e.Field] = true
		}
	}
	effective := func(f string) bool {
		if to, ok := optDerived[f]; ok {
			return reads[to]
		}
		return reads[f]
	}
	listed := func(f string) bool {
		if to, ok := optDerived[f]; ok {
			return listedFields[to]
		}
		return listedFields[f]
	}
	for _, v := range []any{Options{}, ChannelOptions{}, JobConfig{}, ChannelSection{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name := typ.Name() + "." + typ.Field(i).Name
			if n := typ.Field(i).Name; n == "Raw" || n == "Src" {
				continue // bookkeeping, not an option
			}
			switch {
			case !effective(name) && !listed(name):
				t.Errorf("%s: no code reads it; act on it or list it in optionNoEffects", name)
			case effective(name) && listed(name):
				t.Errorf("%s is read now: remove it from optionNoEffects (and docs/configuration.md)", name)
			}
		}
	}
	for f := range listedFields {
		typ, field, _ := strings.Cut(f, ".")
		known := false
		for _, v := range []any{Options{}, ChannelOptions{}, JobConfig{}, ChannelSection{}} {
			if _, ok := reflect.TypeOf(v).FieldByName(field); ok && reflect.TypeOf(v).Name() == typ {
				known = true
			}
		}
		if !known {
			t.Errorf("optionNoEffects names field %s, which does not exist", f)
		}
	}

	tables := map[optFile]map[string]optKind{optionDat: optionTable, channelOption: channelOptionTable, jobController: jobGlobalTable}
	seen := map[string]bool{}
	for _, e := range optionNoEffects {
		id := strconv.Itoa(int(e.File)) + e.Key
		if seen[id] {
			t.Errorf("%s is listed twice", e.Key)
		}
		seen[id] = true
		if _, ok := tables[e.File][e.Key]; !ok {
			t.Errorf("%s is listed but is not a key of its file's table (it would warn as unknown)", e.Key)
		}
		if e.Field == "" && literals[e.Key] {
			t.Errorf("%s is listed without a field but code names it: remove it from optionNoEffects", e.Key)
		}
		if e.Reason == "" {
			t.Errorf("%s: no reason", e.Key)
		}
	}
	for f, table := range tables {
		byKey := optionNoEffectFor(f)
		for key := range table {
			if _, ok := byKey[key]; !ok && !literals[key] {
				t.Errorf("option %s: no code reads it; act on it or list it in optionNoEffects", key)
			}
		}
	}
}

// optScanModule returns the option struct fields the module's non-test code
// reads ("Type.Field") and the string literals it names.
func optScanModule(t *testing.T) (reads, literals map[string]bool) {
	t.Helper()
	const self = "mtad.dev/mta/compiler"
	reads, literals = map[string]bool{}, map[string]bool{}
	for _, p := range scanModule(t) {
		for _, f := range p.files {
			optScanFile(f, p.path == self, p.info, reads, literals)
		}
	}
	return reads, literals
}

func optScanFile(f *ast.File, self bool, info *types.Info, reads, literals map[string]bool) {
	writes := map[ast.Expr]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for _, l := range n.Lhs {
				writes[l] = true
			}
		case *ast.IncDecStmt:
			writes[n.X] = true
		case *ast.UnaryExpr:
			if n.Op == token.AND {
				writes[n.X] = true
			}
		}
		return true
	})
	scan := func(root ast.Node, fieldReads bool) {
		ast.Inspect(root, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					if s, err := strconv.Unquote(n.Value); err == nil {
						literals[s] = true
					}
				}
			case *ast.SelectorExpr:
				sel, ok := info.Selections[n]
				if !ok || sel.Kind() != types.FieldVal || writes[n] || !fieldReads {
					return true
				}
				recv := sel.Recv()
				if p, ok := recv.(*types.Pointer); ok {
					recv = p.Elem()
				}
				if named, ok := recv.(*types.Named); ok && named.Obj().Pkg() != nil && named.Obj().Pkg().Path() == "mtad.dev/mta/compiler" {
					reads[named.Obj().Name()+"."+sel.Obj().Name()] = true
				}
			}
			return true
		})
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			scan(d, !self || !slices.Contains(optReaderFuncs, d.Name.Name))
		case *ast.GenDecl:
			if self && d.Tok == token.VAR && slices.ContainsFunc(d.Specs, func(s ast.Spec) bool {
				vs, ok := s.(*ast.ValueSpec)
				return ok && slices.ContainsFunc(vs.Names, func(id *ast.Ident) bool { return slices.Contains(optTableVars, id.Name) })
			}) {
				continue
			}
			scan(d, true)
		}
	}
}

// TestOptionNoEffectsDocumented: docs/configuration.md lists every key of
// optionNoEffects in its section.
func TestOptionNoEffectsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	const heading = "## option.dat, channel option and job_controller.cnf keys accepted without effect"
	_, section, ok := strings.Cut(string(b), heading)
	if !ok {
		t.Fatalf("docs/configuration.md has no %q", heading)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	for _, e := range optionNoEffects {
		if !strings.Contains(section, "`"+e.Key+"`") {
			t.Errorf("docs/configuration.md does not list `%s` in %q", e.Key, heading)
		}
	}
}

// TestChannelOptionLimits: ALLOW_TRANSACTIONS_PER_SESSION and
// ALLOW_REJECTIONS_BEFORE_DEFERRAL become the channel's transactionlimit and
// deferralrejectlimit unless imta.cnf gives the keyword.
func TestChannelOptionLimits(t *testing.T) {
	tests := []struct {
		name             string
		keywords, option string
		tx, rejects      int
	}{
		{"none", "", "", 0, 0},
		{"options", "", "ALLOW_TRANSACTIONS_PER_SESSION=5\nALLOW_REJECTIONS_BEFORE_DEFERRAL=3\n", 5, 3},
		{"keywords win", " transactionlimit 2 deferralrejectlimit 4", "ALLOW_TRANSACTIONS_PER_SESSION=5\nALLOW_REJECTIONS_BEFORE_DEFERRAL=3\n", 2, 4},
		{"one of each", " transactionlimit 2", "ALLOW_REJECTIONS_BEFORE_DEFERRAL=3\n", 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"imta.cnf": strings.Replace(baseIMTA, "tcp_local smtp mx", "tcp_local smtp mx"+tt.keywords, 1),
				"job_controller.cnf": basePools}
			if tt.option != "" {
				files["tcp_local_option"] = tt.option
			}
			r := build(t, files)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %v", messages(r.Errors))
			}
			c, ok := r.Image.Channel("tcp_local")
			if !ok {
				t.Fatal("no tcp_local")
			}
			if c.TransactionLimit != tt.tx || c.DeferralRejectLimit != tt.rejects {
				t.Errorf("transactionlimit %d deferralrejectlimit %d, want %d %d", c.TransactionLimit, c.DeferralRejectLimit, tt.tx, tt.rejects)
			}
			if l, _ := r.Image.Channel("l"); l.TransactionLimit != 0 || l.DeferralRejectLimit != 0 {
				t.Errorf("l got tcp_local's limits: %d %d", l.TransactionLimit, l.DeferralRejectLimit)
			}
		})
	}
}
