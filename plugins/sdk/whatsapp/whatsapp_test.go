package whatsapp

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWireShape pins the JSON of every payload part: the core decodes these
// from stored events, so a renamed field or a changed omitempty is a break of
// the wire contract, not a refactoring. The empty cases show which fields are
// always present.
func TestWireShape(t *testing.T) {
	t.Parallel()
	seen := time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)
	tests := map[string]struct {
		in   any
		want string
	}{
		"media empty": {Media{}, `{}`},
		"media cloud api": {Media{ID: "1038117", MimeType: "image/jpeg", SHA256: "bCvt=", Caption: "menu"},
			`{"id":"1038117","mime_type":"image/jpeg","sha256":"bCvt=","caption":"menu"}`},
		"media linked device": {Media{Kind: "document", MimeType: "application/pdf", SHA256: "0102", Filename: "a.pdf", FileLength: 42,
			DirectPath: "/v/t62/abc", MediaKey: "a2V5", FileEncSHA256: "ZW5j"},
			`{"mime_type":"application/pdf","sha256":"0102","filename":"a.pdf","file_length":42,"kind":"document","direct_path":"/v/t62/abc","media_key":"a2V5","file_enc_sha256":"ZW5j"}`},
		"media flags":          {Media{Voice: true, Animated: true}, `{"voice":true,"animated":true}`},
		"location empty":       {Location{}, `{"latitude":0,"longitude":0}`},
		"location live":        {Location{Latitude: 45.46, Longitude: 9.19, Name: "Duomo", Address: "Milano", URL: "https://x.example", Live: true}, `{"latitude":45.46,"longitude":9.19,"name":"Duomo","address":"Milano","url":"https://x.example","live":true}`},
		"shared contact empty": {SharedContact{}, `{}`},
		"shared contact":       {SharedContact{Name: "Bob", VCard: "BEGIN:VCARD"}, `{"name":"Bob","vcard":"BEGIN:VCARD"}`},
		"interactive empty":    {InteractiveReply{}, `{"type":""}`},
		"interactive list":     {InteractiveReply{Type: "list_reply", ID: "slot", Title: "Tue", Description: "Dr."}, `{"type":"list_reply","id":"slot","title":"Tue","description":"Dr."}`},
		"interactive flow":     {InteractiveReply{Type: "nfm_reply", ResponseJSON: `{"a":1}`}, `{"type":"nfm_reply","response_json":"{\"a\":1}"}`},
		"button empty":         {ButtonReply{}, `{}`},
		"button":               {ButtonReply{Payload: "STOP", Text: "Stop"}, `{"payload":"STOP","text":"Stop"}`},
		"reaction removed":     {Reaction{MessageID: "M1"}, `{"message_id":"M1"}`},
		"reaction":             {Reaction{MessageID: "M1", Emoji: "👍"}, `{"message_id":"M1","emoji":"👍"}`},
		"context empty":        {MessageContext{}, `{}`},
		"context":              {MessageContext{MessageID: "M1", From: "+39333", Forwarded: true}, `{"message_id":"M1","from":"+39333","forwarded":true}`},
		"edit empty":           {Edit{}, `{"message_id":""}`},
		"edit":                 {Edit{MessageID: "M1", Text: "ciao!"}, `{"message_id":"M1","text":"ciao!"}`},
		"revoke empty":         {Revoke{}, `{"message_id":""}`},
		"error empty":          {ErrorDetail{}, `{"code":0}`},
		"error":                {ErrorDetail{Code: 131026, Title: "Undeliverable", Message: "Message undeliverable", Details: "More."}, `{"code":131026,"title":"Undeliverable","message":"Message undeliverable","details":"More."}`},
		"presence empty":       {Presence{}, `{"available":false}`},
		"presence":             {Presence{Phone: "+39333", LID: "1@lid", Available: true, LastSeen: &seen}, `{"phone":"+39333","lid":"1@lid","available":true,"last_seen":"2026-03-14T09:30:00Z"}`},
		"chat state empty":     {ChatState{}, `{"state":""}`},
		"chat state recording": {ChatState{LID: "1@lid", State: "composing", Media: "audio"}, `{"lid":"1@lid","state":"composing","media":"audio"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}
