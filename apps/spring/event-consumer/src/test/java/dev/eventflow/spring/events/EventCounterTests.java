package dev.eventflow.spring.events;

import java.nio.charset.StandardCharsets;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import org.springframework.messaging.support.MessageBuilder;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class EventCounterTests {

	@ParameterizedTest
	@ValueSource(strings = { "not json", "[1,2]", "\"text\"", "{\"hello\":\"world\"}", "{\"id\":\"x\"}",
			"{\"type\":\"t\"}", "{\"id\":\"\",\"type\":\"t\"}", "{\"id\":1,\"type\":\"t\"}", "" })
	void rejectsBodiesThatAreNotCloudEvents(String body) {
		EventCounter counter = new EventCounter(new ObjectMapper());
		assertThatThrownBy(() -> counter.accept(MessageBuilder.withPayload(body.getBytes(StandardCharsets.UTF_8)).build()))
			.isInstanceOf(EventCounter.NotACloudEventException.class);
		assertThat(counter.stats().received()).isZero();
	}

	@ParameterizedTest
	@ValueSource(strings = { "ce_", "ce-", "cloudEvents:" })
	void acceptsBinaryModeAttributes(String prefix) {
		EventCounter counter = new EventCounter(new ObjectMapper());
		counter.accept(MessageBuilder.withPayload("{}".getBytes(StandardCharsets.UTF_8))
			.setHeader(prefix + "specversion", "1.0")
			.setHeader(prefix + "id", "1")
			.setHeader(prefix + "type", "dev.eventflow.order.ORDER_CREATED")
			.build());
		assertThat(counter.stats().byType()).containsEntry("dev.eventflow.order.ORDER_CREATED", 1L);
	}

}
