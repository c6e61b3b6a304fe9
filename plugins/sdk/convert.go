package sdk

import (
	"encoding/json"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/ponte-hub/ponte/plugins/proto/ponte/connector/v1"
)

// This file converts between the protocol's messages and the SDK's types on
// the plugin side. The host side does the mirror conversions in
// plugins/proto/hostrpc; plugins/testkit's round-trip tests keep the two in
// step.

var kindToProto = map[ErrorKind]pb.ErrorKind{
	KindUnknown:     pb.ErrorKind_ERROR_KIND_UNSPECIFIED,
	KindInvalid:     pb.ErrorKind_ERROR_KIND_INVALID,
	KindAuth:        pb.ErrorKind_ERROR_KIND_AUTH,
	KindNotFound:    pb.ErrorKind_ERROR_KIND_NOT_FOUND,
	KindRateLimited: pb.ErrorKind_ERROR_KIND_RATE_LIMITED,
	KindRetryable:   pb.ErrorKind_ERROR_KIND_RETRYABLE,
	KindPermanent:   pb.ErrorKind_ERROR_KIND_PERMANENT,
}

var kindFromProto = func() map[pb.ErrorKind]ErrorKind {
	m := make(map[pb.ErrorKind]ErrorKind, len(kindToProto))
	for k, v := range kindToProto {
		m[v] = k
	}
	return m
}()

// errorToProto turns any error a connector returned into the protocol's Error.
// An error that is not an *Error keeps its message and gets no kind, which the
// host treats as retryable.
func errorToProto(err error) *pb.Error {
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		return &pb.Error{Kind: pb.ErrorKind_ERROR_KIND_UNSPECIFIED, Message: err.Error()}
	}
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return &pb.Error{
		Kind:         kindToProto[e.Kind],
		Message:      msg,
		Code:         e.Code,
		RetryAfterMs: e.RetryAfter.Milliseconds(),
	}
}

// errorFromProto turns a HostService error back into an *Error.
func errorFromProto(e *pb.Error) *Error {
	if e == nil {
		return nil
	}
	return &Error{
		Kind:       kindFromProto[e.GetKind()],
		Message:    e.GetMessage(),
		Code:       e.GetCode(),
		RetryAfter: time.Duration(e.GetRetryAfterMs()) * time.Millisecond,
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

func connectionFromProto(c *pb.Connection) Connection {
	return Connection{
		ID:         c.GetId(),
		TenantID:   c.GetTenantId(),
		Config:     Config(c.GetConfig()),
		WebhookURL: c.GetWebhookUrl(),
	}
}

func webhookRequestFromProto(r *pb.WebhookRequest) WebhookRequest {
	var headers map[string][]string
	if len(r.GetHeaders()) > 0 {
		headers = make(map[string][]string, len(r.GetHeaders()))
		for k, v := range r.GetHeaders() {
			headers[k] = v.GetValues()
		}
	}
	return WebhookRequest{
		Method:     r.GetMethod(),
		Path:       r.GetPath(),
		Query:      r.GetQuery(),
		Headers:    headers,
		Body:       r.GetBody(),
		ReceivedAt: timeFromProto(r.GetReceivedAt()),
	}
}

func httpResponseToProto(r *HTTPResponse) *pb.HTTPResponse {
	if r == nil {
		return nil
	}
	return &pb.HTTPResponse{Status: int32(r.Status), Headers: r.Headers, Body: r.Body}
}

func eventToProto(e Event) *pb.Event {
	return &pb.Event{
		DedupeKey:   e.DedupeKey,
		Type:        e.Type,
		OccurredAt:  timeToProto(e.OccurredAt),
		Correlation: e.Correlation,
		Payload:     e.Payload,
	}
}

func eventsToProto(events []Event) []*pb.Event {
	if len(events) == 0 {
		return nil
	}
	out := make([]*pb.Event, len(events))
	for i, e := range events {
		out[i] = eventToProto(e)
	}
	return out
}

func manifestToProto(m Manifest) (*pb.Manifest, error) {
	out := &pb.Manifest{
		Name:            m.Name,
		Version:         m.Version,
		DisplayName:     m.DisplayName,
		Description:     m.Description,
		ProtocolVersion: ProtocolVersion,
		Webhooks:        m.Webhooks,
		PollIntervalMs:  m.PollInterval.Milliseconds(),
		Lifecycle:       m.Lifecycle,
		Sessions:        m.Sessions,
	}
	for _, f := range m.Config {
		pf := &pb.ConfigField{
			Name:        f.Name,
			Type:        string(f.Type),
			Description: f.Description,
			Required:    f.Required,
			Secret:      f.Secret,
			Enum:        f.Enum,
			Pattern:     f.Pattern,
		}
		if f.Default != nil {
			b, err := json.Marshal(f.Default)
			if err != nil {
				return nil, Permanent("encoding the default of config field %q: %v", f.Name, err)
			}
			pf.DefaultJson = b
		}
		out.Config = append(out.Config, pf)
	}
	for _, e := range m.Events {
		out.Events = append(out.Events, &pb.EventType{Type: e.Type, Description: e.Description})
	}
	for _, a := range m.Actions {
		out.Actions = append(out.Actions, &pb.Action{
			Name:         a.Name,
			Description:  a.Description,
			ParamsSchema: a.Params,
			ResultSchema: a.Result,
		})
	}
	return out, nil
}
