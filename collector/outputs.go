package collector

import (
	"context"
	"errors"

	"github.com/seatwatch/greenhouse-collector/events"
)

// publisher publishes events: *events.Bus. The syncer and connections publish through
// outputs.
type publisher interface {
	Publish(ctx context.Context, envs []events.Envelope) error
}

// outputs publishes events and passes on ClickHouse writes' errors for the syncer and
// connections, counting the failures and marking them as the collector's own
// (codeNATSUnavailable, codeStorageUnavailable): a failed run then says which dependency
// failed, not Greenhouse.
type outputs struct {
	bus     publisher
	metrics *metrics
}

// publish publishes envelopes and counts the outcome. Within a sync step's run (sentMemory),
// it leaves out the events an earlier failed run of the step published, and records those
// acknowledged.
func (o outputs) publish(ctx context.Context, envs []events.Envelope) error {
	t := trackerOf(ctx)
	if envs = t.unsent(envs); len(envs) == 0 {
		return nil
	}
	if err := o.bus.Publish(ctx, envs); err != nil {
		if ctx.Err() == nil {
			o.metrics.publishFailures.Inc()
		}
		return internal(codeNATSUnavailable, err)
	}
	t.published(envs)
	o.metrics.eventsPublished.Add(float64(len(envs)))
	return nil
}

// stored counts a failed ClickHouse write and passes its error on.
func (o outputs) stored(err error) error {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			o.metrics.storeFailures.Inc()
		}
		return internal(codeStorageUnavailable, err)
	}
	return nil
}
