package dev.eventflow.spring.count;

import java.util.function.Consumer;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;

/**
 * count-sink: a Data Flow-style sink. The {@code count} consumer (binding {@code input},
 * the functional {@code count-in-0} renamed in application.properties) logs every payload
 * at INFO and counts it. A payload containing {@code poison} fails, so the binder retries
 * it {@code maxAttempts} times and then rejects it (dead-lettered when the operator sets
 * {@code autoBindDlq}). {@code GET /actuator/sink} reports the counts; see {@link SinkEndpoint}.
 */
@SpringBootApplication
public class CountSinkApplication {

	public static void main(String[] args) {
		SpringApplication.run(CountSinkApplication.class, args);
	}

	@Bean
	SinkCounter sinkCounter() {
		return new SinkCounter();
	}

	@Bean
	public Consumer<String> count(SinkCounter counter) {
		return counter::accept;
	}

	@Bean
	SinkEndpoint sinkEndpoint(SinkCounter counter) {
		return new SinkEndpoint(counter);
	}

}
