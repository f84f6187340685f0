package dev.eventflow.spring.events;

import java.util.function.Consumer;

import com.fasterxml.jackson.databind.ObjectMapper;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;
import org.springframework.messaging.Message;

/**
 * event-consumer: consumes the CloudEvents 1.0 that eventflow's apps publish in structured
 * JSON mode (AMQP content type {@code application/cloudevents+json}, the whole event as
 * the body, routing key {@code <aggregate>.<EVENT>}). The {@code events} consumer (binding
 * {@code input}) takes the raw body ({@code byte[]}, with native decoding so that no
 * content-type conversion interferes; see application.properties), reads the event's
 * attributes ({@link EventCounter#attributes}) and counts deliveries, distinct ids,
 * duplicates and events by type. A body that is not a CloudEvent fails (retried, then rejected).
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

	@Bean
	public Consumer<Message<byte[]>> events(EventCounter counter) {
		return counter::accept;
	}

	@Bean
	EventsEndpoint eventsEndpoint(EventCounter counter) {
		return new EventsEndpoint(counter);
	}

}
