package dev.eventflow.spring.time;

import java.time.Clock;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.context.annotation.Bean;

/**
 * time-source: a Data Flow-style source. The {@code time} supplier is polled once per
 * {@code spring.integration.poller.fixed-delay} (1 s by default) and each poll emits one
 * JSON message {@code {"sequence":N,"time":"<ISO-8601 instant>"}} (N counts from 1, per
 * process) on the binding {@code output} (the functional {@code time-out-0}, renamed in
 * application.properties). The destination and the broker come from the operator.
 */
@SpringBootApplication
public class TimeSourceApplication {

	public static void main(String[] args) {
		SpringApplication.run(TimeSourceApplication.class, args);
	}

	@Bean
	@ConditionalOnMissingBean
	Clock clock() {
		return Clock.systemUTC();
	}

	@Bean
	public Supplier<String> time(ObjectMapper mapper, Clock clock) {
		AtomicLong sequence = new AtomicLong();
		return () -> {
			ObjectNode tick = mapper.createObjectNode();
			tick.put("sequence", sequence.incrementAndGet());
			tick.put("time", clock.instant().toString());
			return tick.toString();
		};
	}

}
