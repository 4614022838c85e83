package jobctl

import (
	"path/filepath"
	"syscall"
	"testing"

	"mtad.dev/mta/internal/lazyfs"
)

// TestHoldListSurvivesPowerCut: once Stop or Start returned, a power cut that
// forgets everything not fsync'd leaves the list as they made it.
func TestHoldListSurvivesPowerCut(t *testing.T) {
	fs := lazyfs.MountForTest(t)
	path := filepath.Join(fs.Dir(), "holdlist")
	reopen := func() *HoldList {
		t.Helper()
		loss, err := fs.PowerCut()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("power cut: %v", loss)
		hl, err := OpenHoldList(path)
		if err != nil {
			t.Fatal(err)
		}
		return hl
	}
	hl, err := OpenHoldList(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"tcp_local", "tcp_intranet"} {
		if err := hl.Stop(ch); err != nil {
			t.Fatal(err)
		}
	}
	hl = reopen()
	if got := hl.List(); len(got) != 2 {
		t.Fatalf("after qm stop of two channels and a power cut: %v", got)
	}
	if err := hl.Start("tcp_local"); err != nil {
		t.Fatal(err)
	}
	hl = reopen()
	if got := hl.List(); len(got) != 1 || got[0] != "tcp_intranet" {
		t.Errorf("after qm start tcp_local and a power cut: %v, want [tcp_intranet]", got)
	}
}

// TestHoldListReportsDirSyncFailure: if the directory cannot be synced, the
// change is not durable and Stop must say so (it used to ignore the error).
func TestHoldListReportsDirSyncFailure(t *testing.T) {
	fs := lazyfs.MountForTest(t)
	hl, err := OpenHoldList(filepath.Join(fs.Dir(), "holdlist"))
	if err != nil {
		t.Fatal(err)
	}
	fs.FailSyncs(0, syscall.EIO)
	if err := hl.Stop("tcp_local"); err == nil {
		t.Error("Stop reported success although the directory fsync failed")
	}
}
