package eventflow.bench.account;

import java.net.URI;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;

import org.springframework.cloud.stream.function.StreamBridge;
import org.springframework.dao.DataIntegrityViolationException;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.messaging.support.MessageBuilder;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.servlet.support.ServletUriComponentsBuilder;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

@RestController
public class AccountController {
    /** Output binding of {@code StreamBridge}; its destination and routing key are properties. */
    static final String OUTPUT = "account-out-0";
    static final String CREATED = "ACCOUNT_CREATED";

    record NewAccount(String firstName, String lastName, String email) {}

    private final AccountRepository accounts;
    private final StreamBridge bridge;
    private final ObjectMapper json;

    AccountController(AccountRepository accounts, StreamBridge bridge, ObjectMapper json) {
        this.accounts = accounts;
        this.bridge = bridge;
        this.json = json;
    }

    @PostMapping(path = "/v1/accounts", consumes = MediaType.APPLICATION_JSON_VALUE)
    ResponseEntity<Object> create(@RequestBody NewAccount input) throws JsonProcessingException {
        String firstName = trimmed(input.firstName(), 100);
        String lastName = trimmed(input.lastName(), 100);
        String email = input.email() == null ? "" : input.email().trim();
        if (firstName == null) return invalid("firstName", "must be 1 to 100 characters");
        if (lastName == null) return invalid("lastName", "must be 1 to 100 characters");
        int at = email.indexOf('@');
        if (email.length() > 254 || at < 1 || at == email.length() - 1
                || email.indexOf('@', at + 1) >= 0 || email.chars().anyMatch(Character::isWhitespace)) {
            return invalid("email", "must be an address like name@example.com");
        }
        Account account = accounts.saveAndFlush(
                new Account(UUID.randomUUID().toString(), firstName, lastName, email, Instant.now()));
        String base = ServletUriComponentsBuilder.fromCurrentContextPath().toUriString();
        String self = base + "/v1/accounts/" + account.getAccountId();
        Map<String, Object> body = represent(account, self);
        bridge.send(OUTPUT, MessageBuilder.withPayload(json.writeValueAsBytes(cloudEvent(account, body, base)))
                .setHeader("contentType", "application/cloudevents+json")
                .setHeader("routingKey", "account." + CREATED)
                .build());
        return ResponseEntity.created(URI.create(self)).contentType(MediaType.parseMediaType("application/hal+json"))
                .body(body);
    }

    @ExceptionHandler(DataIntegrityViolationException.class)
    ResponseEntity<Object> taken() {
        return problem(HttpStatus.CONFLICT, "email", "is taken");
    }

    private static Map<String, Object> represent(Account a, String self) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("accountId", a.getAccountId());
        body.put("firstName", a.getFirstName());
        body.put("lastName", a.getLastName());
        body.put("email", a.getEmail());
        body.put("status", a.getStatus());
        body.put("createdAt", a.getCreatedAt().toString());
        body.put("lastModified", a.getLastModified().toString());
        body.put("_links", Map.of("self", Map.of("href", self),
                "markPending", Map.of("href", self + "/commands/markPending")));
        return body;
    }

    private static Map<String, Object> cloudEvent(Account a, Map<String, Object> data, String base) {
        Map<String, Object> ce = new LinkedHashMap<>();
        ce.put("specversion", "1.0");
        ce.put("id", UUID.randomUUID().toString());
        ce.put("source", base + "/v1/accounts");
        ce.put("type", "dev.eventflow.account." + CREATED);
        ce.put("subject", a.getAccountId());
        ce.put("time", a.getCreatedAt().toString());
        ce.put("datacontenttype", "application/json");
        ce.put("sequence", "00000000000000000001");
        ce.put("data", data);
        return ce;
    }

    private static String trimmed(String value, int max) {
        if (value == null) return null;
        String v = value.trim();
        return v.isEmpty() || v.codePointCount(0, v.length()) > max ? null : v;
    }

    private static ResponseEntity<Object> invalid(String field, String detail) {
        return problem(HttpStatus.UNPROCESSABLE_ENTITY, field, detail);
    }

    private static ResponseEntity<Object> problem(HttpStatus status, String field, String detail) {
        return ResponseEntity.status(status).contentType(MediaType.APPLICATION_PROBLEM_JSON)
                .body(Map.of("status", status.value(), "title", status.getReasonPhrase(),
                        "detail", field + " " + detail, "field", field));
    }
}
