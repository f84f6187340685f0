package dev.eventflow.spring.time;

import java.time.Instant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.cloud.stream.binder.test.OutputDestination;
import org.springframework.cloud.stream.binder.test.TestChannelBinderConfiguration;
import org.springframework.context.annotation.Import;
import org.springframework.messaging.Message;

import static org.assertj.core.api.Assertions.assertThat;

@SpringBootTest(properties = "spring.integration.poller.fixed-delay=50")
@Import(TestChannelBinderConfiguration.class)
class TimeSourceApplicationTests {

	@Autowired
	OutputDestination output;

	@Autowired
	ObjectMapper mapper;

	@Test
	void emitsSequencedJsonTicksOnOutput() throws Exception {
		Message<byte[]> first = output.receive(5000, "output");
		Message<byte[]> second = output.receive(5000, "output");
		assertThat(first).isNotNull();
		assertThat(second).isNotNull();
		assertThat(first.getHeaders().get("contentType").toString()).startsWith("application/json");
		JsonNode a = mapper.readTree(first.getPayload());
		JsonNode b = mapper.readTree(second.getPayload());
		assertThat(a.get("sequence").asLong()).isEqualTo(1);
		assertThat(b.get("sequence").asLong()).isEqualTo(2);
		assertThat(Instant.parse(a.get("time").asText())).isBeforeOrEqualTo(Instant.parse(b.get("time").asText()));
	}

}
