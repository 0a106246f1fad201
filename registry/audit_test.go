package registry

import "testing"

func TestAppendAudit_ReplacesAnExistingKeyWithoutCountingTwice(t *testing.T) {
	s := NewStore()
	tx := s.WriteTxn(5)
	r := AuditRecord{Index: 5, Action: "set", ResourceType: AuditConfig, Resource: "a", After: []byte(`1`)}
	if _, _, err := tx.AppendAudit([]AuditRecord{r}); err != nil {
		t.Fatal(err)
	}
	r.After = []byte(`12345`)
	if _, _, err := tx.AppendAudit([]AuditRecord{r, {Index: 3, Action: "set"}}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	rtx := s.ReadTxn()
	defer rtx.Abort()
	st := rtx.AuditState(nil)
	recs := rtx.AuditBacklog(nil, AuditKey{}, 10)
	var bytes int64
	for i := range recs {
		bytes += recs[i].Size()
	}
	if st.Records != 2 || len(recs) != 2 || st.Bytes != bytes || st.Last != (AuditKey{Index: 5}) {
		t.Errorf("state %+v, %d records of %d bytes", st, len(recs), bytes)
	}
}
