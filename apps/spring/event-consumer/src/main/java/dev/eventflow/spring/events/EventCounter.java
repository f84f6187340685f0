package dev.eventflow.spring.events;

import java.io.IOException;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import org.springframework.cloud.function.cloudevent.CloudEventMessageUtils;
import org.springframework.messaging.Message;

/**
 * Reads one CloudEvent per delivery and counts it. A redelivery of an
 * event (the same {@code id} again, as at-least-once delivery allows) counts as a
 * duplicate. Ids are kept in memory for the life of the process. Thread-safe.
 */
public class EventCounter {

	private static final Logger log = LoggerFactory.getLogger(EventCounter.class);

	private final ObjectMapper mapper;

	private final AtomicLong received = new AtomicLong();

	private final AtomicLong duplicates = new AtomicLong();

	private final Set<String> ids = ConcurrentHashMap.newKeySet();

	private final Map<String, LongAdder> byType = new ConcurrentHashMap<>();

	public EventCounter(ObjectMapper mapper) {
		this.mapper = mapper;
	}

	public void accept(Message<byte[]> message) {
		Attributes event = attributes(message);
		this.received.incrementAndGet();
		this.byType.computeIfAbsent(event.type(), t -> new LongAdder()).increment();
		boolean first = this.ids.add(event.id());
		if (!first) {
			this.duplicates.incrementAndGet();
		}
		log.info("event-consumer received {} id={} subject={}{}", event.type(), event.id(), event.subject(),
				first ? "" : " (duplicate)");
	}

	/** The attributes this consumer uses. */
	record Attributes(String id, String type, String subject) {
	}

	/**
	 * A structured-mode event (what eventflow publishes) has its attributes in the JSON
	 * body; a binary-mode event (attributes as {@code ce-*}/{@code ce_*}/{@code cloudEvents:*}
	 * headers, {@code data} as the body) is accepted too.
	 */
	Attributes attributes(Message<byte[]> message) {
		String id = CloudEventMessageUtils.getId(message);
		String type = CloudEventMessageUtils.getType(message);
		if (id != null || type != null) {
			require("id", id);
			require("type", type);
			String subject = CloudEventMessageUtils.getSubject(message);
			return new Attributes(id, type, subject == null ? "" : subject);
		}
		JsonNode event = parse(message.getPayload());
		return new Attributes(event.get("id").asText(), event.get("type").asText(), event.path("subject").asText(""));
	}

	private static void require(String attribute, String value) {
		if (value == null || value.isEmpty()) {
			throw new NotACloudEventException("no '" + attribute + "' attribute");
		}
	}

	private JsonNode parse(byte[] body) {
		JsonNode event;
		try {
			event = this.mapper.readTree(body);
		}
		catch (IOException ex) {
			String reason = (ex instanceof JsonProcessingException json) ? json.getOriginalMessage() : ex.getMessage();
			throw new NotACloudEventException("body is not JSON: " + reason);
		}
		if (event == null || !event.isObject()) {
			throw new NotACloudEventException("body is not a JSON object");
		}
		for (String attribute : new String[] { "id", "type" }) {
			JsonNode value = event.get(attribute);
			require(attribute, (value != null && value.isTextual()) ? value.asText() : null);
		}
		return event;
	}

	/** Deliveries, distinct ids, duplicate deliveries and deliveries by CloudEvents type. */
	public record Stats(long received, long distinct, long duplicates, Map<String, Long> byType) {
	}

	public Stats stats() {
		Map<String, Long> types = new TreeMap<>();
		this.byType.forEach((type, n) -> types.put(type, n.sum()));
		return new Stats(this.received.get(), this.ids.size(), this.duplicates.get(), types);
	}

	/** Thrown for a body that is not a structured-mode CloudEvent. */
	public static class NotACloudEventException extends RuntimeException {

		NotACloudEventException(String reason) {
			super("event-consumer: not a CloudEvent: " + reason);
		}

	}

}
