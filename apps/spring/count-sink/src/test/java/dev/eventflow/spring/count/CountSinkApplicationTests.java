package dev.eventflow.spring.count;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.context.SpringBootTest.WebEnvironment;
import org.springframework.boot.test.web.client.TestRestTemplate;
import org.springframework.cloud.stream.binder.test.InputDestination;
import org.springframework.cloud.stream.binder.test.TestChannelBinderConfiguration;
import org.springframework.context.annotation.Import;
import org.springframework.messaging.support.MessageBuilder;

import static org.assertj.core.api.Assertions.assertThat;

@SpringBootTest(webEnvironment = WebEnvironment.RANDOM_PORT,
		properties = { "spring.cloud.stream.bindings.input.consumer.max-attempts=3",
				"spring.cloud.stream.bindings.input.consumer.back-off-initial-interval=1" })
@Import(TestChannelBinderConfiguration.class)
class CountSinkApplicationTests {

	@Autowired
	InputDestination input;

	@Autowired
	TestRestTemplate http;

	private void send(String text) {
		this.input.send(MessageBuilder.withPayload(text.getBytes(StandardCharsets.UTF_8))
			.setHeader("contentType", "text/plain")
			.build(), "input");
	}

	@Test
	void countsMessagesAndFailedAttempts() {
		assertThat(this.http.getForObject("/actuator/sink", String.class))
			.isEqualTo("{\"received\":0,\"failedAttempts\":0,\"last\":null}");
		send("one");
		send("two");
		try {
			send("a poison pill");
		}
		catch (RuntimeException expected) {
			// the test binder hands the final failure back to the sender
		}
		assertThat(this.http.getForObject("/actuator/sink", String.class))
			.isEqualTo("{\"received\":2,\"failedAttempts\":3,\"last\":\"two\"}");
	}

}
