package eventflow.bench.consumer;

import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;
import org.springframework.messaging.Message;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/**
 * The Spring Cloud Stream consumer of the benchmark: the function {@code drain} takes each
 * message as bytes and counts it; the binder acks it when the function returns (acknowledge
 * mode AUTO, one ack per message). Prefetch and concurrency are binder properties.
 * {@code GET /consumed} answers the count, so the benchmark can time the drain.
 */
@SpringBootApplication
@RestController
public class ConsumerApplication {
    private final AtomicLong consumed = new AtomicLong();

    public static void main(String[] args) {
        SpringApplication.run(ConsumerApplication.class, args);
    }

    @Bean
    public Consumer<Message<byte[]>> drain() {
        return message -> consumed.incrementAndGet();
    }

    @GetMapping("/consumed")
    public long consumed() {
        return consumed.get();
    }
}
