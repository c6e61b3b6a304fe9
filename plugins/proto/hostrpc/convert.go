package hostrpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/ponte-hub/ponte/plugins/proto/ponte/connector/v1"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// This file converts between the protocol's messages and the SDK's types on
// the host side; plugins/sdk does the mirror conversions on the plugin side.

var kindToProto = map[sdk.ErrorKind]pb.ErrorKind{
	sdk.KindUnknown:     pb.ErrorKind_ERROR_KIND_UNSPECIFIED,
	sdk.KindInvalid:     pb.ErrorKind_ERROR_KIND_INVALID,
	sdk.KindAuth:        pb.ErrorKind_ERROR_KIND_AUTH,
	sdk.KindNotFound:    pb.ErrorKind_ERROR_KIND_NOT_FOUND,
	sdk.KindRateLimited: pb.ErrorKind_ERROR_KIND_RATE_LIMITED,
	sdk.KindRetryable:   pb.ErrorKind_ERROR_KIND_RETRYABLE,
	sdk.KindPermanent:   pb.ErrorKind_ERROR_KIND_PERMANENT,
}

var kindFromProto = func() map[pb.ErrorKind]sdk.ErrorKind {
	m := make(map[pb.ErrorKind]sdk.ErrorKind, len(kindToProto))
	for k, v := range kindToProto {
		m[v] = k
	}
	return m
}()

// ErrorFromProto turns an Error carried in a response into an *sdk.Error; a
// nil Error gives nil. A kind this host does not know (from a newer plugin)
// becomes KindUnknown, which callers treat as retryable.
func ErrorFromProto(e *pb.Error) *sdk.Error {
	if e == nil {
		return nil
	}
	return &sdk.Error{
		Kind:       kindFromProto[e.GetKind()],
		Message:    e.GetMessage(),
		Code:       e.GetCode(),
		RetryAfter: time.Duration(e.GetRetryAfterMs()) * time.Millisecond,
	}
}

// ErrorToProto turns an error of the host's services into the protocol's
// Error. The kind of an *sdk.Error in err's chain is kept; any other error is
// reported as retryable with a generic message, so the host's internals (SQL,
// addresses) do not leak into a third-party plugin.
func ErrorToProto(err error) *pb.Error {
	if err == nil {
		return nil
	}
	var e *sdk.Error
	if !errors.As(err, &e) {
		return &pb.Error{Kind: pb.ErrorKind_ERROR_KIND_RETRYABLE, Message: "internal host error"}
	}
	return &pb.Error{
		Kind:         kindToProto[e.Kind],
		Message:      e.Message,
		Code:         e.Code,
		RetryAfterMs: e.RetryAfter.Milliseconds(),
	}
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromProto(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func connectionToProto(c sdk.Connection) *pb.Connection {
	return &pb.Connection{Id: c.ID, TenantId: c.TenantID, Config: c.Config, WebhookUrl: c.WebhookURL}
}

func webhookRequestToProto(r sdk.WebhookRequest) *pb.WebhookRequest {
	out := &pb.WebhookRequest{
		Method:     r.Method,
		Path:       r.Path,
		Query:      r.Query,
		Body:       r.Body,
		ReceivedAt: timeToProto(r.ReceivedAt),
	}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]*pb.HeaderValues, len(r.Headers))
		for k, v := range r.Headers {
			out.Headers[k] = &pb.HeaderValues{Values: v}
		}
	}
	return out
}

func httpResponseFromProto(r *pb.HTTPResponse) *sdk.HTTPResponse {
	if r == nil {
		return nil
	}
	out := &sdk.HTTPResponse{Status: int(r.GetStatus()), Body: r.GetBody()}
	if len(r.GetHeaders()) > 0 {
		out.Headers = r.GetHeaders()
	}
	return out
}

func eventFromProto(e *pb.Event) sdk.Event {
	out := sdk.Event{
		DedupeKey:  e.GetDedupeKey(),
		Type:       e.GetType(),
		OccurredAt: timeFromProto(e.GetOccurredAt()),
		Payload:    json.RawMessage(e.GetPayload()),
	}
	if len(e.GetCorrelation()) > 0 {
		out.Correlation = e.GetCorrelation()
	}
	return out
}

// EventsFromProto converts events as carried by the protocol.
func EventsFromProto(events []*pb.Event) []sdk.Event {
	if len(events) == 0 {
		return nil
	}
	out := make([]sdk.Event, len(events))
	for i, e := range events {
		out[i] = eventFromProto(e)
	}
	return out
}

// ManifestFromProto converts a manifest as carried by the protocol.
func ManifestFromProto(m *pb.Manifest) (sdk.Manifest, error) {
	if m == nil {
		return sdk.Manifest{}, errors.New("the plugin sent no manifest")
	}
	out := sdk.Manifest{
		Name:         m.GetName(),
		Version:      m.GetVersion(),
		DisplayName:  m.GetDisplayName(),
		Description:  m.GetDescription(),
		Webhooks:     m.GetWebhooks(),
		PollInterval: time.Duration(m.GetPollIntervalMs()) * time.Millisecond,
		Lifecycle:    m.GetLifecycle(),
		Sessions:     m.GetSessions(),
	}
	for _, f := range m.GetConfig() {
		cf := sdk.ConfigField{
			Name:        f.GetName(),
			Type:        sdk.FieldType(f.GetType()),
			Description: f.GetDescription(),
			Required:    f.GetRequired(),
			Secret:      f.GetSecret(),
			Enum:        f.GetEnum(),
			Pattern:     f.GetPattern(),
		}
		if len(f.GetDefaultJson()) > 0 {
			if err := json.Unmarshal(f.GetDefaultJson(), &cf.Default); err != nil {
				return sdk.Manifest{}, fmt.Errorf("decoding the default of config field %q: %w", f.GetName(), err)
			}
		}
		out.Config = append(out.Config, cf)
	}
	for _, e := range m.GetEvents() {
		out.Events = append(out.Events, sdk.EventType{Type: e.GetType(), Description: e.GetDescription()})
	}
	for _, a := range m.GetActions() {
		out.Actions = append(out.Actions, sdk.Action{
			Name:        a.GetName(),
			Description: a.GetDescription(),
			Params:      nilIfEmpty(a.GetParamsSchema()),
			Result:      nilIfEmpty(a.GetResultSchema()),
		})
	}
	return out, nil
}

func nilIfEmpty(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}
