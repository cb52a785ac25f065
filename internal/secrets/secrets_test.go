package secrets_test

import (
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/internal/secrets"
)

func TestSealRotateOpen(t *testing.T) {
	k1, _ := secrets.NewKey()
	k2, _ := secrets.NewKey()
	old, err := secrets.Parse(k1)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal("hunter2")
	if err != nil || !secrets.IsSealed(sealed) || strings.Contains(sealed, "hunter2") {
		t.Fatalf("Seal = %q, %v", sealed, err)
	}
	rotated, _ := secrets.Parse("# new first\n" + k2 + "\n" + k1 + "\n")
	if v, err := rotated.Open(sealed); err != nil || v != "hunter2" {
		t.Errorf("the rotated keyring opens an old value: %q, %v", v, err)
	}
	resealed, _ := rotated.Seal("hunter2")
	onlyNew, _ := secrets.Parse(k2)
	if v, err := onlyNew.Open(resealed); err != nil || v != "hunter2" {
		t.Errorf("after resealing, the new key alone opens it: %q, %v", v, err)
	}
	if _, err := onlyNew.Open(sealed); err == nil {
		t.Error("a value sealed with a dropped key opened")
	}
	if v, err := onlyNew.Open("plain"); err != nil || v != "plain" {
		t.Errorf("a value stored before keys: %q, %v", v, err)
	}
	tampered := sealed[:len(sealed)-4] + "AAAA"
	if _, err := old.Open(tampered); err == nil {
		t.Error("a tampered value opened")
	}
	if _, err := secrets.Parse("not base64!"); err == nil {
		t.Error("a bad key file parsed")
	}
}
