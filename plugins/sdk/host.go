package sdk

import (
	"context"

	pb "github.com/ponte-hub/ponte/plugins/proto/ponte/connector/v1"
)

// MaxStateSize is the largest value [Host.SetState] accepts.
const MaxStateSize = 64 << 10

// hostClient is the Host a connector gets from its factory: it calls the
// host's HostService through the go-plugin broker.
type hostClient struct {
	rpc pb.HostServiceClient
}

var _ Host = (*hostClient)(nil)

func (h *hostClient) Emit(ctx context.Context, connectionID string, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	for i, e := range events {
		if e.DedupeKey == "" {
			return Invalid("emitting events: event %d (%s) has no dedupe key", i, e.Type)
		}
	}
	res, err := h.rpc.Emit(ctx, &pb.EmitRequest{ConnectionId: connectionID, Events: eventsToProto(events)})
	if err != nil {
		return hostUnreachable("emitting events", err)
	}
	if e := errorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

func (h *hostClient) GetState(ctx context.Context, connectionID, key string) ([]byte, error) {
	res, err := h.rpc.GetState(ctx, &pb.GetStateRequest{ConnectionId: connectionID, Key: key})
	if err != nil {
		return nil, hostUnreachable("reading state", err)
	}
	if e := errorFromProto(res.GetError()); e != nil {
		return nil, e
	}
	if !res.GetFound() {
		return nil, nil
	}
	if res.GetValue() == nil {
		return []byte{}, nil
	}
	return res.GetValue(), nil
}

func (h *hostClient) SetState(ctx context.Context, connectionID, key string, value []byte) error {
	if len(value) > MaxStateSize {
		return Invalid("setting state %q: value of %d bytes is larger than %d", key, len(value), MaxStateSize)
	}
	res, err := h.rpc.SetState(ctx, &pb.SetStateRequest{ConnectionId: connectionID, Key: key, Value: value})
	if err != nil {
		return hostUnreachable("writing state", err)
	}
	if e := errorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

func (h *hostClient) UpdateSession(ctx context.Context, connectionID string, u SessionUpdate) error {
	req := &pb.UpdateSessionRequest{
		ConnectionId: connectionID,
		State:        string(u.State),
		Reason:       u.Reason,
		RetryAt:      timeToProto(u.RetryAt),
		BannedUntil:  timeToProto(u.BannedUntil),
		QrCode:       u.QRCode,
		QrExpiresAt:  timeToProto(u.QRExpiresAt),
		PairingCode:  u.PairingCode,
		PhoneSeenAt:  timeToProto(u.PhoneSeenAt),
	}
	if a := u.Account; a != nil {
		req.Account = &pb.SessionAccount{Phone: a.Phone, Jid: a.JID, Lid: a.LID, PushName: a.PushName, Platform: a.Platform}
	}
	res, err := h.rpc.UpdateSession(ctx, req)
	if err != nil {
		return hostUnreachable("reporting the session", err)
	}
	if e := errorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

func (h *hostClient) Signal(ctx context.Context, connectionID string, sig Signal) error {
	res, err := h.rpc.Signal(ctx, &pb.SignalRequest{
		ConnectionId: connectionID, Kind: sig.Kind, Payload: sig.Payload, At: timeToProto(sig.At),
	})
	if err != nil {
		return hostUnreachable("relaying a signal", err)
	}
	if e := errorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

// hostUnreachable reports a transport failure between plugin and host as
// retryable: the host may be restarting.
func hostUnreachable(what string, err error) error {
	return &Error{Kind: KindRetryable, Message: what + ": host unreachable", Err: err}
}
