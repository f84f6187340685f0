package dev.eventflow.spring.count;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** What {@code count} does with each payload, and the counts it keeps. Thread-safe. */
public class SinkCounter {

	/** A payload containing this text fails every attempt. */
	public static final String POISON = "poison";

	private static final Logger log = LoggerFactory.getLogger(SinkCounter.class);

	private final AtomicLong received = new AtomicLong();

	private final AtomicLong failedAttempts = new AtomicLong();

	private final AtomicReference<String> last = new AtomicReference<>();

	public void accept(String payload) {
		log.info("count-sink received: {}", payload);
		if (payload.contains(POISON)) {
			this.failedAttempts.incrementAndGet();
			throw new PoisonMessageException(payload);
		}
		this.last.set(payload);
		this.received.incrementAndGet();
	}

	/** Successfully consumed messages, failed attempts and the last consumed payload. */
	public record Stats(long received, long failedAttempts, String last) {
	}

	public Stats stats() {
		return new Stats(this.received.get(), this.failedAttempts.get(), this.last.get());
	}

	/** Thrown for a poison payload; the binder retries, then rejects the message. */
	public static class PoisonMessageException extends RuntimeException {

		PoisonMessageException(String payload) {
			super("count-sink rejects a poison payload: " + payload);
		}

	}

}
