package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"mtad.dev/mta/control"
	"mtad.dev/mta/internal/lazyfs"
)

// TestMaildropSurvivesPowerCut: on a fresh install, a message mtactl sendmail
// spooled while mtad was down (WriteDrop fsyncs the file and the maildrop)
// must still be in the maildrop after a power cut that forgets every
// directory entry not fsync'd. The maildrop's own entry in DATA is the start's
// to make durable; without it the cut takes the directory and the file in it.
func TestMaildropSurvivesPowerCut(t *testing.T) {
	fs := lazyfs.MountForTest(t)
	config := t.TempDir()
	writeConfig(t, config, map[string]string{"imta.cnf": "localhost        $U%localhost@localhost\n\nl\nlocalhost\n"})
	data := filepath.Join(fs.Dir(), "data")
	stopDaemon(t, startDaemonAt(t, config, data)) // the first start creates the maildrop
	drop := filepath.Join(data, control.MaildropName)
	name, err := control.WriteDrop(drop, &control.Submission{User: "root", Recipients: []string{"alice@localhost"},
		Content: []byte("Subject: spooled\r\n\r\nwhile down\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	loss, err := fs.PowerCut()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power cut: %v", loss)
	if _, err := os.Stat(filepath.Join(drop, name)); err != nil {
		t.Errorf("spooled in the maildrop, then lost in a power cut: %v", err)
	}
}
