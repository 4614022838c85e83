package mappings

import (
	"testing"
)

func TestDecodeAccess(t *testing.T) {
	relaying := Access{Matched: true, Reject: true, Text: "Relaying not allowed", Delay: 30}
	tests := []struct {
		name, tmpl string
		want       Access
	}{
		// The equivalences the product's documentation gives.
		{"D then text", "$N$D30|Relaying$ not$ allowed", relaying},
		{"flags at end", "30|Relaying$ not$ allowed$D$N", relaying},
		{"N first D last", "$N30|Relaying$ not$ allowed$D", relaying},
		{"flags in the middle", "30|$N$DRelaying$ not$ allowed", relaying},
		// The product's troubleshooting example.
		{"X then N", "$X4.2.1|$NHost$ temporarily$ blocked",
			Access{Matched: true, Reject: true, Enhanced: "4.2.1", Text: "Host temporarily blocked"}},
		{"Y", "$Y", Access{Matched: true, Allow: true}},
		{"no flags", "", Access{Matched: true, Allow: true}},
		{"F", "$FGo$ away!", Access{Matched: true, Reject: true, Text: "Go away!"}},
		{"N no text", "$N", Access{Matched: true, Reject: true}},
		{"N wins over Y", "$Y$Nno", Access{Matched: true, Reject: true, Text: "no"}},
		{"negative delay", "$D-50|$Y", Access{Matched: true, Allow: true, Delay: -50}},
		{"hold bitbucket discard", "$H$B$V$Y", Access{Matched: true, Allow: true, Hold: true, Bitbucket: true, Discard: true}},
		{"Z discards", "$Z", Access{Matched: true, Allow: true, Discard: true}},
		{"full order", "$N$X$A$T$D$>$<$I$K$J$U7|j@x|k@x|user|grp|sm|sr|20|tag|X-H:$ v|5.7.9|bye$ now",
			Access{Matched: true, Reject: true, Debug: 7, SetFrom: "j@x", SetSender: "k@x",
				GroupUser: "user", GroupID: "grp", SyslogMatch: "sm", SyslogReject: "sr",
				Delay: 20, Tag: "tag", AddHeader: "X-H: v", Enhanced: "5.7.9", Text: "bye now"}},
		{"N text keeps bars", "$X4.7.1|$Na|b|c", Access{Matched: true, Reject: true, Enhanced: "4.7.1", Text: "a|b|c"}},
		{"missing fields", "$D$X$N", Access{Matched: true, Reject: true}},
		{"novacation", "$!$Y", Access{Matched: true, Allow: true, NoVacation: true}},
		{"J K from access", "$J$Kme@x|you@y|$Y", Access{Matched: true, Allow: true, SetFrom: "me@x", SetSender: "you@y"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := 0
			s := mustCompile(t, tbl("ORIG_SEND_ACCESS", &line, "* "+tc.tmpl))
			r, _ := s.Map("ORIG_SEND_ACCESS", "probe", 0, nil)
			got := DecodeAccess(r)
			tc.want.Src = "mappings:2"
			tc.want.Flags = r.Flags
			if got != tc.want {
				t.Errorf("DecodeAccess(%q) =\n %+v\nwant\n %+v", r.Output, got, tc.want)
			}
		})
	}
}

func TestDecodeAccessUnmatched(t *testing.T) {
	got := DecodeAccess(Result{})
	if got.Matched || !got.Allow || got.Reject {
		t.Errorf("unmatched: %+v", got)
	}
	// A failed mapping (Matched false, output = input) also allows.
	got = DecodeAccess(Result{Output: "tcp_local|a|b|c", Src: "mappings:3"})
	if !got.Allow || got.Text != "" {
		t.Errorf("failed mapping: %+v", got)
	}
}
