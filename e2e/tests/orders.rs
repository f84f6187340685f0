//! The order saga through the cluster, read back through the web roles the
//! way a user would: an order beyond the stock and an order with a declined
//! payment both end ORDER_FAILED, the warehouse API shows every unit they had
//! held given back, and the released units sell to the next order.

use std::time::Duration;

use eventflow_e2e::*;
use serde_json::{Value, json};

const NS: &str = EXAMPLES_NS;

struct Shop {
    http: reqwest::Client,
    account: String,
    order: String,
    payment: String,
    warehouse: String,
}

impl Shop {
    async fn open() -> Self {
        let client = client().await;
        example_system();
        let web = |app: &str| format!("ecommerce-{app}-web");
        Self {
            http: reqwest::Client::new(),
            account: forward_service(&client, NS, &web("account"), 8080)
                .await
                .unwrap(),
            order: forward_service(&client, NS, &web("order"), 8080)
                .await
                .unwrap(),
            payment: forward_service(&client, NS, &web("payment"), 8080)
                .await
                .unwrap(),
            warehouse: forward_service(&client, NS, &web("warehouse"), 8080)
                .await
                .unwrap(),
        }
    }

    async fn post(&self, url: &str, body: &Value) -> Value {
        let r = self.http.post(url).json(body).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "POST {url}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn get(&self, url: &str) -> Value {
        let r = self.http.get(url).send().await.unwrap();
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Posts an order of `(productId, quantity)` lines; returns its id.
    async fn order(&self, account: &str, lines: &[(&str, u32)], payment: &str) -> String {
        let items: Vec<Value> = lines
            .iter()
            .map(|(p, q)| json!({"name": format!("{p} widget"), "productId": p, "quantity": q, "price": 10.0, "tax": 1.0}))
            .collect();
        let body = json!({"accountId": account, "lineItems": items,
                          "shippingAddress": "3 Cluster Road", "paymentMethod": payment});
        let o = self.post(&format!("{}/v1/orders", self.order), &body).await;
        o["orderId"].as_str().unwrap().to_owned()
    }

    /// Waits until the order is ORDER_SUCCEEDED or ORDER_FAILED.
    async fn final_state(&self, id: &str) -> Value {
        let url = format!("{}/v1/orders/{id}", self.order);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let order = self.get(&url).await;
            if order["status"] == "ORDER_SUCCEEDED" || order["status"] == "ORDER_FAILED" {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} did not end in 120 s: {order}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Per product: available, held, sold and created units of a warehouse.
    async fn stock(&self, warehouse: &str) -> Value {
        self.get(&format!(
            "{}/v1/warehouses/{warehouse}/inventory",
            self.warehouse
        ))
        .await["products"]
            .clone()
    }
}

fn units(available: u64, held: u64, sold: u64) -> Value {
    json!({"available": available, "held": held, "sold": sold, "created": available + held + sold})
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn an_out_of_stock_order_and_a_declined_payment_end_order_failed_with_their_units_released() {
    let shop = Shop::open().await;
    let tag = format!("e2e-{}-{}", std::process::id(), epoch_seconds());
    let account = shop
        .post(
            &format!("{}/v1/accounts", shop.account),
            &json!({"firstName": "Out", "lastName": "OfStock", "email": format!("{tag}@example.com")}),
        )
        .await["accountId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Products of this test only, so no other order competes for them.
    let (apple, pear) = (format!("{tag}-apple"), format!("{tag}-pear"));
    let warehouse = shop
        .post(
            &format!("{}/v1/warehouses", shop.warehouse),
            &json!({"address": "4 Test Dock"}),
        )
        .await["warehouseId"]
        .as_str()
        .unwrap()
        .to_owned();
    let inventory = format!("{}/v1/warehouses/{warehouse}/inventory", shop.warehouse);
    shop.post(&inventory, &json!({"productId": apple, "quantity": 3}))
        .await;
    shop.post(&inventory, &json!({"productId": pear, "quantity": 2}))
        .await;

    // Four apples wanted, three in stock: the reservations that succeeded are
    // released again and nothing is sold.
    let short = shop
        .order(&account, &[(&apple, 4), (&pear, 1)], "CARD")
        .await;
    let order = shop.final_state(&short).await;
    assert_eq!(order["status"], "ORDER_FAILED", "{order}");
    assert_eq!(
        order["failureReason"], "1 of 5 units out of stock",
        "{order}"
    );
    assert!(order["paymentId"].is_null(), "no payment without stock");
    let stock = shop.stock(&warehouse).await;
    assert_eq!(stock[&apple], units(3, 0, 0), "{stock}");
    assert_eq!(stock[&pear], units(2, 0, 0), "{stock}");

    // In stock, but the payment is declined: the payment fails, then the
    // order, and every reserved unit goes back.
    let declined = shop
        .order(&account, &[(&apple, 2), (&pear, 2)], "DECLINED")
        .await;
    let order = shop.final_state(&declined).await;
    assert_eq!(order["status"], "ORDER_FAILED", "{order}");
    assert_eq!(order["failureReason"], "payment declined", "{order}");
    let payment_id = order["paymentId"].as_str().unwrap();
    let payment = shop
        .get(&format!("{}/v1/payments/{payment_id}", shop.payment))
        .await;
    assert_eq!(payment["status"], "PAYMENT_FAILED", "{payment}");
    assert_eq!(
        payment["failureReason"], "payment method DECLINED is declined",
        "{payment}"
    );
    let stock = shop.stock(&warehouse).await;
    assert_eq!(stock[&apple], units(3, 0, 0), "{stock}");
    assert_eq!(stock[&pear], units(2, 0, 0), "{stock}");

    // The units both failed orders held sell to the next order.
    let good = shop
        .order(&account, &[(&apple, 3), (&pear, 2)], "CARD")
        .await;
    let order = shop.final_state(&good).await;
    assert_eq!(order["status"], "ORDER_SUCCEEDED", "{order}");
    let stock = shop.stock(&warehouse).await;
    assert_eq!(stock[&apple], units(0, 0, 3), "{stock}");
    assert_eq!(stock[&pear], units(0, 0, 2), "{stock}");
}

/// Seconds since the epoch: names unique across runs on one cluster.
fn epoch_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
