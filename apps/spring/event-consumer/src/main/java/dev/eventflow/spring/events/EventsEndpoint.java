package dev.eventflow.spring.events;

import org.springframework.boot.actuate.endpoint.annotation.Endpoint;
import org.springframework.boot.actuate.endpoint.annotation.ReadOperation;

/**
 * {@code GET /actuator/events}:
 * {@code {"received":N,"distinct":D,"duplicates":X,"byType":{"<type>":n,...}}}.
 */
@Endpoint(id = "events")
public class EventsEndpoint {

	private final EventCounter counter;

	public EventsEndpoint(EventCounter counter) {
		this.counter = counter;
	}

	@ReadOperation
	public EventCounter.Stats events() {
		return this.counter.stats();
	}

}
