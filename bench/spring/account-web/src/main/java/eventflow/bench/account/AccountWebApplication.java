package eventflow.bench.account;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * The Spring counterpart of eventflow's account web role, for the benchmark only:
 * {@code POST /v1/accounts} with {@code {"firstName","lastName","email"}} stores the account
 * (Spring Data JPA, H2 in memory, unique email) and publishes ACCOUNT_CREATED as a CloudEvent
 * with {@code StreamBridge} to the RabbitMQ binder; 201 with {@code Location} and the account.
 * Readiness: {@code /actuator/health/readiness} on the management port (database and broker).
 */
@SpringBootApplication
public class AccountWebApplication {
    public static void main(String[] args) {
        SpringApplication.run(AccountWebApplication.class, args);
    }
}
