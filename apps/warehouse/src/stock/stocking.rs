//! Stocking a warehouse and reading its stock: `POST` and `GET
//! /v1/warehouses/{id}/inventory`, and the search for the warehouses
//! holding every product of an order.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StockRequest {
    product_id: String,
    #[serde(default)]
    quantity: Option<u32>,
}

/// `POST /v1/warehouses/{id}/inventory`: stocks `quantity` (default 1)
/// items of a product; each emits INVENTORY_CREATED and is available.
pub(super) async fn stock(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<StockRequest>,
) -> Result<Response, Problem> {
    let base = hal::base_url(&headers);
    // New items only: nothing to race with but a repeat of this request.
    let attempts = Attempts {
        max: 1,
        exhausted: Problem::conflict("stocking raced with itself; try again"),
    };
    let target = format!("/v1/warehouses/{id}/inventory");
    ctx.run_command(&headers, &target, attempts, || async {
        ctx.require::<Warehouse>(&id).await?;
        let product = input.product_id.trim();
        if product.is_empty() || product.len() > 200 {
            return Err(Problem::bad_request(
                "productId",
                "must be 1 to 200 characters",
            ));
        }
        let quantity = input.quantity.unwrap_or(1);
        if quantity == 0 || quantity > MAX_STOCK_PER_REQUEST {
            return Err(Problem::bad_request("quantity", "must be 1 to 1000"));
        }
        let (writes, items) = (0..quantity)
            .map(|_| {
                let item_id = uuid::Uuid::new_v4().to_string();
                let events = InventoryItem::stocked(&item_id, &id, product);
                let (write, item) = write(&item_id, &InventoryItem::default(), 0, events);
                (write, represent(&item, &item_id, &base))
            })
            .unzip::<_, _, Vec<_>, Vec<_>>();
        let body = json!({
            "_embedded": { "inventory": items },
            "_links": { "self": link(format!("{base}/v1/warehouses/{id}/inventory")),
                        "warehouse": link(format!("{base}/v1/warehouses/{id}")) },
        });
        Ok(Decision::commit(writes, StatusCode::CREATED, body))
    })
    .await
}

/// `GET /v1/warehouses/{id}/inventory`: the warehouse's items and, per
/// product, how many are available, held and sold.
pub(super) async fn warehouse_inventory(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    ctx.require::<Warehouse>(&id).await?;
    let base = hal::base_url(&headers);
    // This warehouse's items only (its lookup group), in creation order.
    let items: Vec<InventoryItem> = ctx
        .store
        .lookup::<InventoryItem>(&id, None, i64::MAX)
        .await?
        .into_iter()
        .map(|(_, item)| item)
        .collect();
    let mut products: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for i in &items {
        let counts = products.entry(&i.product_id).or_default();
        let slot = if i.available() {
            0
        } else if i.held() {
            1
        } else {
            2
        };
        counts[slot] += 1;
    }
    let products: serde_json::Map<String, Value> = products
        .into_iter()
        .map(|(p, [a, h, s])| {
            (
                p.to_owned(),
                json!({ "available": a, "held": h, "sold": s, "created": a + h + s }),
            )
        })
        .collect();
    let embedded: Vec<Value> = items
        .iter()
        .map(|i| represent(i, &i.inventory_id, &base))
        .collect();
    Ok(hal::response(
        StatusCode::OK,
        json!({
            "products": products,
            "_embedded": { "inventory": embedded },
            "_links": { "self": link(format!("{base}/v1/warehouses/{id}/inventory")),
                        "warehouse": link(format!("{base}/v1/warehouses/{id}")) },
        }),
    ))
}

/// `GET /v1/warehouses/search/findByProducts?productIds=a,b`: the
/// warehouses holding every product, the one with most available units first.
pub(super) async fn find_by_products(
    State(ctx): State<WebContext>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let wanted: Vec<&str> = q
        .get("productIds")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if wanted.is_empty() {
        return Err(Problem::bad_request(
            "productIds",
            "name at least one product, comma-separated",
        ));
    }
    // Per warehouse, how many items of each wanted product are available
    // and taken (held or sold): counted on the store's lookup index, no
    // item read. A warehouse holds a product even with none available.
    let mut keys: HashMap<String, (&str, bool)> = HashMap::new();
    for p in &wanted {
        for available in [true, false] {
            keys.insert(InventoryItem::stock_key(p, available), (*p, available));
        }
    }
    let counts = ctx
        .store
        .lookup_counts::<InventoryItem>(&keys.keys().cloned().collect::<Vec<_>>())
        .await?;
    let mut held: HashMap<&str, (usize, std::collections::HashSet<&str>)> = HashMap::new();
    for c in &counts {
        let Some((product, available)) = keys.get(&c.key) else {
            continue;
        };
        let entry = held.entry(&c.group).or_default();
        entry.1.insert(product);
        if *available {
            entry.0 += usize::try_from(c.count).unwrap_or(0);
        }
    }
    let mut found: Vec<(&str, usize)> = held
        .iter()
        .filter(|(_, (_, products))| products.len() == wanted.len())
        .map(|(w, (available, _))| (*w, *available))
        .collect();
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let base = hal::base_url(&headers);
    let mut warehouses = Vec::new();
    for (id, _) in found {
        if let Some((w, _)) = ctx.load::<Warehouse>(id).await? {
            warehouses.push(represent(&w, id, &base));
        }
    }
    Ok(hal::response(
        StatusCode::OK,
        json!({ "_embedded": { "warehouses": warehouses },
                "_links": { "self": link(format!("{base}/v1/warehouses/search/findByProducts?productIds={}", wanted.join(","))) } }),
    ))
}
