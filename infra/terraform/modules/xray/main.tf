# X-Ray for distributed tracing of one order's path (gateway -> ingestion -> order-processor -> matcher
# -> settlement / market-data). The services export OTLP to the ADOT collector, which forwards to X-Ray;
# these rules decide how much is kept: order placement more than reads, health checks never.

resource "aws_xray_sampling_rule" "orders" {
  rule_name      = "${var.name}-orders"
  priority       = 100
  version        = 1
  reservoir_size = 1
  fixed_rate     = var.order_path_sampling_rate
  url_path       = "/api/v3/order*"
  host           = "*"
  http_method    = "*"
  service_type   = "*"
  service_name   = "*"
  resource_arn   = "*"
  tags           = var.tags
}

resource "aws_xray_sampling_rule" "health" {
  rule_name      = "${var.name}-health"
  priority       = 10
  version        = 1
  reservoir_size = 0
  fixed_rate     = 0
  url_path       = "/*z"
  host           = "*"
  http_method    = "GET"
  service_type   = "*"
  service_name   = "*"
  resource_arn   = "*"
  tags           = var.tags
}

resource "aws_xray_sampling_rule" "default" {
  rule_name      = "${var.name}-default"
  priority       = 1000
  version        = 1
  reservoir_size = 1
  fixed_rate     = var.default_sampling_rate
  url_path       = "*"
  host           = "*"
  http_method    = "*"
  service_type   = "*"
  service_name   = "*"
  resource_arn   = "*"
  tags           = var.tags
}

resource "aws_xray_group" "order_errors" {
  group_name        = "${var.name}-order-errors"
  filter_expression = "http.url CONTAINS \"/api/v3/order\" AND (error = true OR fault = true)"

  insights_configuration {
    insights_enabled      = true
    notifications_enabled = true
  }

  tags = var.tags
}

resource "aws_xray_encryption_config" "this" {
  type   = "KMS"
  key_id = var.kms_key_arn
}
