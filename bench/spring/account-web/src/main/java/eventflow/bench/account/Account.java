package eventflow.bench.account;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

@Entity
@Table(name = "account")
public class Account {
    @Id
    @Column(length = 36)
    private String accountId;

    @Column(nullable = false, length = 100)
    private String firstName;

    @Column(nullable = false, length = 100)
    private String lastName;

    @Column(nullable = false, length = 254)
    private String email;

    /** The lower-cased email: unique, as the account context's email claim. */
    @Column(nullable = false, length = 254, unique = true)
    private String emailKey;

    @Column(nullable = false, length = 16)
    private String status;

    @Column(nullable = false)
    private Instant createdAt;

    @Column(nullable = false)
    private Instant lastModified;

    protected Account() {}

    public Account(String accountId, String firstName, String lastName, String email, Instant now) {
        this.accountId = accountId;
        this.firstName = firstName;
        this.lastName = lastName;
        this.email = email;
        this.emailKey = email.toLowerCase();
        this.status = "CREATED";
        this.createdAt = now;
        this.lastModified = now;
    }

    public String getAccountId() { return accountId; }
    public String getFirstName() { return firstName; }
    public String getLastName() { return lastName; }
    public String getEmail() { return email; }
    public String getStatus() { return status; }
    public Instant getCreatedAt() { return createdAt; }
    public Instant getLastModified() { return lastModified; }
}
