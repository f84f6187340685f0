package dev.eventflow.spring.events;

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
		properties = "spring.cloud.stream.bindings.input.consumer.back-off-initial-interval=1")
@Import(TestChannelBinderConfiguration.class)
class EventConsumerApplicationTests {

	@Autowired
	InputDestination input;

	@Autowired
	TestRestTemplate http;

	private void send(String body) {
		send(body, "application/cloudevents+json");
	}

	private void send(String body, String contentType) {
		this.input.send(MessageBuilder.withPayload(body.getBytes(StandardCharsets.UTF_8))
			.setHeader("contentType", contentType)
			.build(), "input");
	}

	private static String event(String id, String type) {
		return """
				{"specversion":"1.0","id":"%s","source":"/eventflow/order","type":"%s",\
				"subject":"order-1","time":"2025-01-01T00:00:00Z","sequence":"00000000000000000001",\
				"data":{"orderId":"order-1"}}""".formatted(id, type);
	}

	@Test
	void countsEventsDuplicatesAndTypesAndRejectsOtherBodies() {
		send(event("a", "dev.eventflow.order.ORDER_CREATED"));
		send(event("b", "dev.eventflow.order.ORDER_CREATED"));
		send(event("a", "dev.eventflow.order.ORDER_CREATED"));
		// a structured event under a plain JSON content type: read from the body
		send(event("c", "dev.eventflow.payment.PAYMENT_CAPTURED"), "application/json");
		// fails every attempt (EventCounterTests covers rejection); it is sent last
		// because the test binder delivers nothing more once a message failed
		try {
			send("{\"hello\":\"world\"}");
		}
		catch (RuntimeException expected) {
			// the test binder may hand the final failure back to the sender
		}
		assertThat(this.http.getForObject("/actuator/events", String.class)).isEqualTo("""
				{"received":4,"distinct":3,"duplicates":1,\
				"byType":{"dev.eventflow.order.ORDER_CREATED":3,"dev.eventflow.payment.PAYMENT_CAPTURED":1}}""");
	}

}
