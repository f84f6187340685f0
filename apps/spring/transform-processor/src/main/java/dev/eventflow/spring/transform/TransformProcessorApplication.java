package dev.eventflow.spring.transform;

import java.util.Locale;
import java.util.function.Function;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;
import org.springframework.expression.Expression;
import org.springframework.expression.spel.standard.SpelExpressionParser;
import org.springframework.expression.spel.support.SimpleEvaluationContext;
import org.springframework.messaging.Message;

/**
 * transform-processor: a Data Flow-style processor with three text functions.
 * <ul>
 * <li>{@code transform} (the default): Data Flow's transform processor — the SpEL
 * {@code expression} property (default {@code payload}) evaluated against the message, e.g.
 * {@code --expression=payload.toUpperCase()}; its bindings are Data Flow's {@code input} →
 * {@code output};</li>
 * <li>{@code uppercase}: the payload text upper-cased (bindings {@code uppercase-in-0} →
 * {@code uppercase-out-0});</li>
 * <li>{@code reverse}: the payload text reversed (bindings {@code reverse-in-0} →
 * {@code reverse-out-0}).</li>
 * </ul>
 * {@code spring.cloud.function.definition} picks which are bound: {@code transform} by
 * default; the operator may set {@code uppercase;reverse} (two independent functions) or a
 * composition such as {@code uppercase|reverse} (one function, bindings
 * {@code uppercasereverse-in-0}/{@code -out-0}).
 */
@SpringBootApplication
public class TransformProcessorApplication {

	public static void main(String[] args) {
		SpringApplication.run(TransformProcessorApplication.class, args);
	}

	@Bean
	public Function<Message<String>, String> transform(@Value("${expression:payload}") String expression) {
		Expression parsed = new SpelExpressionParser().parseExpression(expression);
		// Read-only: the expression reads the message and calls methods on it, nothing more.
		SimpleEvaluationContext context = SimpleEvaluationContext.forReadOnlyDataBinding()
			.withInstanceMethods()
			.build();
		return message -> String.valueOf(parsed.getValue(context, message));
	}

	@Bean
	public Function<String, String> uppercase() {
		return text -> text.toUpperCase(Locale.ROOT);
	}

	@Bean
	public Function<String, String> reverse() {
		// By code point, so a surrogate pair (an emoji, say) stays intact.
		return text -> new StringBuilder(text).reverse().toString();
	}

}
