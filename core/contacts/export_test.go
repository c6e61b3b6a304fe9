package contacts

import (
	"context"
	"fmt"

	"github.com/ponte-hub/ponte/core/dispatch"
)

// CountSQL is the inbound apply's second statement, for the plan test.
const CountSQL = countSQL

// InboundGroupSQL is the grouped inbound apply, for the plan test.
const InboundGroupSQL = inboundGroupSQL

// ApplyInboundGroup applies evs, senders known by phone, with the group
// statement alone: no falling back to one by one.
func (s *Service) ApplyInboundGroup(evs []dispatch.Event) ([]InboundResult, error) {
	group, err := s.gather(context.Background(), evs)
	if err != nil {
		return nil, err
	}
	return s.applyGroup(group)
}

// ApplyInboundOne applies ev on its own, as LID senders and the members of
// a failed group are.
func (s *Service) ApplyInboundOne(ctx context.Context, ev dispatch.Event) (InboundResult, error) {
	in, err := s.decodeInbound(ev)
	if err != nil {
		return InboundResult{}, err
	}
	return s.applyOne(ctx, in)
}

// ApplyInboundGathered applies evs as the grouper does a gathered group:
// the group statement, and one by one if it fails.
func (s *Service) ApplyInboundGathered(ctx context.Context, evs []dispatch.Event) ([]InboundResult, []error, error) {
	group, err := s.gather(ctx, evs)
	if err != nil {
		return nil, nil, err
	}
	s.inbound.applyLive(group)
	res, errs := make([]InboundResult, len(group)), make([]error, len(group))
	for i, gi := range group {
		o := <-gi.done
		res[i], errs[i] = o.res, o.err
	}
	return res, errs, nil
}

func (s *Service) gather(ctx context.Context, evs []dispatch.Event) ([]*groupedInbound, error) {
	group := make([]*groupedInbound, len(evs))
	for i, ev := range evs {
		in, err := s.decodeInbound(ev)
		if err != nil {
			return nil, err
		}
		if in.phone == nil || in.lid != "" {
			return nil, fmt.Errorf("event %d: only senders known by phone alone are grouped", i)
		}
		group[i] = &groupedInbound{ctx: ctx, in: in, done: make(chan inboundOutcome, 1)}
	}
	return group, nil
}
