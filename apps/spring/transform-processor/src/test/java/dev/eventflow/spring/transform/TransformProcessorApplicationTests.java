package dev.eventflow.spring.transform;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.cloud.stream.binder.test.InputDestination;
import org.springframework.cloud.stream.binder.test.OutputDestination;
import org.springframework.cloud.stream.binder.test.TestChannelBinderConfiguration;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.messaging.Message;
import org.springframework.messaging.support.MessageBuilder;

import static org.assertj.core.api.Assertions.assertThat;

class TransformProcessorApplicationTests {

	private static ConfigurableApplicationContext start(String definition) {
		return new SpringApplicationBuilder(
				TestChannelBinderConfiguration.getCompleteConfiguration(TransformProcessorApplication.class))
			.web(WebApplicationType.NONE)
			.run("--spring.cloud.function.definition=" + definition);
	}

	private static ConfigurableApplicationContext startDefault(String... args) {
		return new SpringApplicationBuilder(
				TestChannelBinderConfiguration.getCompleteConfiguration(TransformProcessorApplication.class))
			.web(WebApplicationType.NONE)
			.run(args);
	}

	private static String send(ConfigurableApplicationContext context, String input, String output, String text) {
		context.getBean(InputDestination.class)
			.send(MessageBuilder.withPayload(text.getBytes(StandardCharsets.UTF_8))
				.setHeader("contentType", "text/plain")
				.build(), input);
		Message<byte[]> out = context.getBean(OutputDestination.class).receive(5000, output);
		assertThat(out).as("a message on %s", output).isNotNull();
		return new String(out.getPayload(), StandardCharsets.UTF_8);
	}

	private static String roundTrip(ConfigurableApplicationContext context, String function, String text) {
		context.getBean(InputDestination.class)
			.send(MessageBuilder.withPayload(text.getBytes(StandardCharsets.UTF_8))
				.setHeader("contentType", "text/plain")
				.build(), function + "-in-0");
		Message<byte[]> out = context.getBean(OutputDestination.class).receive(5000, function + "-out-0");
		assertThat(out).as("a message on %s-out-0", function).isNotNull();
		return new String(out.getPayload(), StandardCharsets.UTF_8);
	}

	@Test
	void theDefaultIsDataFlowsTransformOnInputAndOutputPassingThePayloadThrough() {
		try (ConfigurableApplicationContext context = startDefault()) {
			assertThat(send(context, "input", "output", "hello, world")).isEqualTo("hello, world");
		}
	}

	@Test
	void theExpressionPropertyTransformsThePayload() {
		try (ConfigurableApplicationContext context = startDefault("--expression=payload.toUpperCase()")) {
			assertThat(send(context, "input", "output", "hello, world")).isEqualTo("HELLO, WORLD");
		}
	}

	@Test
	void aJsonTickComesOutAsJsonTransformed() {
		try (ConfigurableApplicationContext context = startDefault("--expression=payload.toUpperCase()")) {
			context.getBean(InputDestination.class)
				.send(MessageBuilder.withPayload("{\"sequence\":1,\"time\":\"t\"}".getBytes(StandardCharsets.UTF_8))
					.setHeader("contentType", "application/json")
					.build(), "input");
			Message<byte[]> out = context.getBean(OutputDestination.class).receive(5000, "output");
			assertThat(new String(out.getPayload(), StandardCharsets.UTF_8)).isEqualTo("{\"SEQUENCE\":1,\"TIME\":\"T\"}");
		}
	}

	@Test
	void anExpressionCannotReachBeyondTheMessage() {
		try (ConfigurableApplicationContext context = startDefault("--expression=T(java.lang.System).exit(1)")) {
			context.getBean(InputDestination.class)
				.send(MessageBuilder.withPayload("x".getBytes(StandardCharsets.UTF_8)).build(), "input");
			assertThat(context.getBean(OutputDestination.class).receive(1000, "output"))
				.as("no output: a type reference is refused").isNull();
		}
	}

	@Test
	void uppercaseOnItsFunctionalBindings() {
		try (ConfigurableApplicationContext context = start("uppercase")) {
			assertThat(roundTrip(context, "uppercase", "hello, world")).isEqualTo("HELLO, WORLD");
		}
	}

	@Test
	void bothFunctionsCanBeBound() {
		try (ConfigurableApplicationContext context = start("uppercase;reverse")) {
			assertThat(roundTrip(context, "uppercase", "abc")).isEqualTo("ABC");
			assertThat(roundTrip(context, "reverse", "abc")).isEqualTo("cba");
		}
	}

	@Test
	void jsonPayloadsStayJson() {
		try (ConfigurableApplicationContext context = start("uppercase")) {
			context.getBean(InputDestination.class)
				.send(MessageBuilder.withPayload("{\"sequence\":1,\"time\":\"t\"}".getBytes(StandardCharsets.UTF_8))
					.setHeader("contentType", "application/json")
					.build(), "uppercase-in-0");
			Message<byte[]> out = context.getBean(OutputDestination.class).receive(5000, "uppercase-out-0");
			assertThat(new String(out.getPayload(), StandardCharsets.UTF_8)).isEqualTo("{\"SEQUENCE\":1,\"TIME\":\"T\"}");
		}
	}

}
