package dev.eventflow.spring.events;

import java.util.function.Consumer;

import com.fasterxml.jackson.databind.ObjectMapper;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.cloud.function.core.FunctionInvocationHelper;
import org.springframework.context.annotation.Bean;
import org.springframework.messaging.Message;

/**
 * event-consumer: consumes the CloudEvents 1.0 that eventflow's apps publish in structured
 * JSON mode (AMQP content type {@code application/cloudevents+json}, the whole event as
 * the body, routing key {@code <aggregate>.<EVENT>}). The {@code events} consumer (binding
 * {@code input}) takes the raw body ({@code byte[]}, so no content-type conversion
 * interferes), reads the event's attributes (see {@link EventCounter#attributes}) and counts deliveries, distinct ids, duplicates and
 * events by type. A body that is not a CloudEvent fails (retried, then rejected).
 * {@code GET /actuator/events} reports the counts; see {@link EventsEndpoint}.
 */
@SpringBootApplication
public class EventConsumerApplication {

	public static void main(String[] args) {
		SpringApplication.run(EventConsumerApplication.class, args);
	}

	@Bean
	EventCounter eventCounter(ObjectMapper mapper) {
		return new EventCounter(mapper);
	}

	/**
	 * Hands every message to the function as received. Spring Cloud Function's default
	 * helper rewrites a message of content type {@code application/cloudevents+json} into
	 * binary mode (attributes as headers, {@code data} as payload) and invents the
	 * attributes a body lacks (an id, a type named after a Java class), which would hide
	 * a malformed event; this consumer reads the structured body itself.
	 */
	@Bean
	FunctionInvocationHelper<Message<?>> passThroughInvocationHelper() {
		return new FunctionInvocationHelper<>() {
		};
	}

	@Bean
	public Consumer<Message<byte[]>> events(EventCounter counter) {
		return counter::accept;
	}

	@Bean
	EventsEndpoint eventsEndpoint(EventCounter counter) {
		return new EventsEndpoint(counter);
	}

}
