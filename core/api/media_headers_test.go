package api

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMediaHeaders(t *testing.T) {
	t.Parallel()
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	tests := map[string]struct {
		md               downloadableMedia
		resultType       string
		data             []byte
		wantType, wantCD string
	}{
		"image inline":            {downloadableMedia{MimeType: "image/jpeg"}, "image/jpeg", nil, "image/jpeg", ""},
		"result type wins":        {downloadableMedia{MimeType: "image/jpeg"}, "image/webp", nil, "image/webp", ""},
		"voice note":              {downloadableMedia{MimeType: "audio/ogg; codecs=opus"}, "", nil, "audio/ogg; codecs=opus", ""},
		"document with name":      {downloadableMedia{MimeType: "application/pdf", Filename: "invoice.pdf"}, "", nil, "application/pdf", `attachment; filename=invoice.pdf`},
		"document without name":   {downloadableMedia{MimeType: "application/pdf"}, "", nil, "application/pdf", "attachment"},
		"html is an attachment":   {downloadableMedia{MimeType: "text/html"}, "", nil, "text/html", "attachment"},
		"svg is an attachment":    {downloadableMedia{MimeType: "image/svg+xml"}, "", nil, "image/svg+xml", "attachment"},
		"no type: sniffed":        {downloadableMedia{}, "", png, "image/png", ""},
		"bad type: sniffed":       {downloadableMedia{MimeType: "nonsense;;"}, "", []byte("hello"), "text/plain; charset=utf-8", "attachment"},
		"path stripped from name": {downloadableMedia{MimeType: "image/png", Filename: `..\..\boot.ini`}, "", nil, "image/png", `attachment; filename=boot.ini`},
		"quotes in name":          {downloadableMedia{MimeType: "text/plain", Filename: `a "b".txt`}, "", nil, "text/plain", `attachment; filename="a \"b\".txt"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			gotType, gotCD := mediaHeaders(tc.md, tc.resultType, tc.data)
			if diff := cmp.Diff([2]string{tc.wantType, tc.wantCD}, [2]string{gotType, gotCD}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSanitizeFilename(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"report.pdf":         "report.pdf",
		"dir/sub/report.pdf": "report.pdf",
		`C:\Users\x\a.docx`:  "a.docx",
		"line\nbreak\r.txt":  "linebreak.txt",
		"  spaced.txt  ":     "spaced.txt",
		"..":                 "",
		"a/":                 "",
		"":                   "",
		"tab\there\x7f.txt":  "tabhere.txt",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			if got := sanitizeFilename(in); got != want {
				t.Errorf("sanitizeFilename(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestETagMatches(t *testing.T) {
	t.Parallel()
	const etag = `"abc"`
	tests := map[string]bool{
		"":               false,
		"*":              true,
		`"abc"`:          true,
		`W/"abc"`:        true,
		`"x", "abc"`:     true,
		` "x" ,W/"abc" `: true,
		`"abcd"`:         false,
		`abc`:            false,
		`"x"`:            false,
	}
	for header, want := range tests {
		t.Run(header, func(t *testing.T) {
			t.Parallel()
			if got := etagMatches(header, etag); got != want {
				t.Errorf("etagMatches(%q) = %v, want %v", header, got, want)
			}
		})
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   float64 // seconds
		want int
	}{
		"unset": {0, 5}, "negative": {-1, 5}, "sub-second": {0.2, 1}, "whole": {20, 20}, "rounded up": {13.2, 14},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := retryAfterSeconds(time.Duration(tc.in * float64(time.Second))); got != tc.want {
				t.Errorf("retryAfterSeconds(%vs) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestMediaSHA256Hex(t *testing.T) {
	t.Parallel()
	// SHA-256 of "abc" in the encodings WhatsApp states it in.
	const hexSum = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	tests := map[string]struct {
		in     string
		want   string
		wantOK bool
	}{
		"linked device hex":      {hexSum, hexSum, true},
		"upper-case hex":         {"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", hexSum, true},
		"cloud api base64":       {"ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", hexSum, true},
		"base64 url, no padding": {"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0", hexSum, true},
		"none stated":            {"", "", true},
		"too short":              {"abc", "", false},
		"hex of 31 bytes":        {hexSum[:62], "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := downloadableMedia{SHA256: tc.in}.sha256Hex()
			if diff := cmp.Diff([2]any{tc.want, tc.wantOK}, [2]any{got, ok}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
