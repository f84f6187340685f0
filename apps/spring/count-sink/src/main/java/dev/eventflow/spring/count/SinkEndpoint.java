package dev.eventflow.spring.count;

import org.springframework.boot.actuate.endpoint.annotation.Endpoint;
import org.springframework.boot.actuate.endpoint.annotation.ReadOperation;

/**
 * {@code GET /actuator/sink}: {@code {"received":N,"failedAttempts":F,"last":"<payload>"}}
 * ({@code last} is null until a message was consumed).
 */
@Endpoint(id = "sink")
public class SinkEndpoint {

	private final SinkCounter counter;

	public SinkEndpoint(SinkCounter counter) {
		this.counter = counter;
	}

	@ReadOperation
	public SinkCounter.Stats sink() {
		return this.counter.stats();
	}

}
