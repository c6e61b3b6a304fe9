// Package sms is the core of Ponte's SMS-compatible send endpoint: tools that
// can only send SMS through Twilio's Messages resource
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json) send WhatsApp
// messages through Ponte without change.
//
// A send resolves the From number to one of the tenant's numbers (a linked
// device by its account's phone, or any number by its id), goes through the
// messaging core like every other send (consent and exclusions, quiet hours
// deferring instead of failing, the 24-hour window of a Cloud API number, the
// idempotent ledger, pacing), and is recorded in sms_messages under a
// Twilio-shaped sid ("SM" + 32 hex) that maps to the ledger row. The ledger
// stays the one record of the message and its status; this package only
// translates it to Twilio's statuses and error codes, and the [Deliverer]
// reports status changes to the client's StatusCallback URL.
//
// Twilio's rules are kept where a Twilio client can see them: the form
// fields, the 1,600-character body limit, the error codes (21211 invalid To,
// 21602 body required, 21606 unusable From, 21610 unsubscribed recipient,
// 63016 outside the WhatsApp window, 20429 too many requests, ...), the
// status values and the status callback's form. See [Error] and [Status].
package sms

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// APIVersion is the Twilio API version this endpoint speaks, echoed in
// answers and callbacks.
const APIVersion = "2010-04-01"

// MaxBodyLen is Twilio's limit on a message body, in characters.
const MaxBodyLen = 1600

// WhatsAppPrefix is the channel prefix of Twilio's WhatsApp addresses
// ("whatsapp:+393331234567"). Both forms are accepted for To and From; the
// answer echoes what the client sent.
const WhatsAppPrefix = "whatsapp:"

// Twilio's message statuses, as this endpoint reports them.
const (
	StatusQueued      = "queued"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusRead        = "read"
	StatusUndelivered = "undelivered"
	StatusFailed      = "failed"
)

// Twilio error codes used by this endpoint. The numbers are Twilio's, so a
// client's existing handling of them (e.g. marking a recipient unsubscribed
// on 21610) keeps working.
const (
	CodeInvalidParameter   = 20001 // a parameter this endpoint cannot honour
	CodeAuthenticate       = 20003 // bad or missing credentials, wrong account
	CodeNotFound           = 20404 // no such message
	CodeForbidden          = 20403 // the API key lacks the scope
	CodeTooManyRequests    = 20429 // the send could not get its turn in time
	CodeInternal           = 20500 // an internal error
	CodeUnavailable        = 20503 // the channel is restarting
	CodeInvalidTo          = 21211 // To is not an E.164 number
	CodeFromRequired       = 21603 // neither From nor MessagingServiceSid
	CodeToRequired         = 21604 // no To
	CodeBodyRequired       = 21602 // neither Body nor MediaUrl
	CodeFromNotUsable      = 21606 // From is not one of the tenant's usable numbers
	CodeInvalidCallbackURL = 21609 // StatusCallback is not an http(s) URL
	CodeUnsubscribed       = 21610 // the recipient opted out or is excluded
	CodeBodyTooLong        = 21617 // Body over 1,600 characters
	CodeInvalidMediaURL    = 21620 // MediaUrl is not an http(s) URL
	CodeServiceNotFound    = 21701 // MessagingServiceSid is not one of the tenant's numbers
	CodeUnreachable        = 30003 // WhatsApp could not deliver the message
	CodeUnknownError       = 30008 // the provider refused it, or the outcome is unknown
	CodeOutsideWindow      = 63016 // free-form text outside the 24-hour window
	CodeMarketingDeclined  = 63049 // Meta chose not to deliver a marketing message
)

// Error is a Twilio error: the code, the HTTP status to answer with and a
// message for people. Clients read it from the body
// {"code", "message", "more_info", "status"}.
type Error struct {
	Code    int
	Status  int
	Message string
	// RetryAfter, when set, is sent as Retry-After (20429, 20503).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return fmt.Sprintf("twilio error %d: %s", e.Code, e.Message) }

// MoreInfo is the Twilio documentation page of the code, which Twilio puts
// in more_info.
func (e *Error) MoreInfo() string {
	return "https://www.twilio.com/docs/errors/" + strconv.Itoa(e.Code)
}

func newError(code, status int, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned by Get for a sid that does not exist or is another
// tenant's.
var ErrNotFound = errors.New("sms message not found")

// Message is a message as Twilio's Message resource shows it.
type Message struct {
	Sid string
	// AccountSid is the account as the client named it in the request path.
	AccountSid string
	// From and To are the addresses as the client wrote them.
	From string
	To   string
	// Body is the text sent (the caption of a media message).
	Body   string
	Status string
	// NumMedia is 1 for a media message, else 0.
	NumMedia int
	// ErrorCode is Twilio's error code for a failed or undelivered message,
	// 0 when there is none.
	ErrorCode    int
	ErrorMessage string
	// MessagingServiceSid is the MessagingServiceSid the client gave, "" when
	// none.
	MessagingServiceSid string
	DateCreated         time.Time
	DateUpdated         time.Time
	DateSent            *time.Time
	// LedgerID is the ledger row (messages.id) carrying the send.
	LedgerID string
}

// Final reports whether a Twilio status will not change any more. Delivered
// is not final: WhatsApp reports read after it.
func Final(status string) bool {
	return status == StatusRead || status == StatusFailed || status == StatusUndelivered
}

// newSid returns a Twilio-shaped message sid: "SM" and 32 hex digits.
func newSid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return "SM" + hex.EncodeToString(b)
}

// AccountSID returns the tenant's Twilio-shaped account sid: "AC" and 32 hex
// digits derived from the tenant id. It is not secret; it exists because
// some tools check that an Account SID looks like Twilio's, and Twilio's own
// Go library refuses credentials with characters other than letters and
// digits (a tenant id has an underscore).
func AccountSID(tenantID string) string {
	sum := sha256.Sum256([]byte("ponte-twilio-account-sid:" + tenantID))
	return "AC" + hex.EncodeToString(sum[:16])
}

// MatchesAccount reports whether sid names tenantID's account: the tenant id
// itself ("ten_..."), the tenant id without underscores ("ten..."; for
// clients that allow letters and digits only), or AccountSID(tenantID).
func MatchesAccount(tenantID, sid string) bool {
	if tenantID == "" || sid == "" {
		return false
	}
	return sid == tenantID || sid == strings.ReplaceAll(tenantID, "_", "") || strings.EqualFold(sid, AccountSID(tenantID))
}

// APIKeyFromPassword returns the API key a Basic-auth password carries. Keys
// are issued as "ponte_<8-char lookup>_<secret>" (core/store); clients that
// allow letters and digits only in the auth token (Twilio's Go library) may
// send the key without its two underscores, and the layout is fixed, so they
// are put back.
func APIKeyFromPassword(password string) string {
	const prefix, lookupLen = "ponte", 8
	if strings.HasPrefix(password, prefix+"_") || !strings.HasPrefix(password, prefix) || len(password) <= len(prefix)+lookupLen {
		return password
	}
	rest := password[len(prefix):]
	return prefix + "_" + rest[:lookupLen] + "_" + rest[lookupLen:]
}
