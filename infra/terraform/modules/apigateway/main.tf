# API Gateway, the public entry of the design for REST: an HTTP API whose routes are the Binance REST
# surface, ANY /api/{proxy+}, and its wallet API (withdrawals), ANY /sapi/{proxy+}, reaching the gateway pods privately through a VPC link to an internal NLB
# (TLS). The NLB's target group is filled with gateway pod IPs by the AWS Load Balancer Controller
# (TargetGroupBinding, chart value awsLoadBalancer.targetGroupArn). API Gateway adds throttling in front of
# the gateway's own per-key rate limits, and access logs. Optionally POST /api/v3/order goes to the
# ingestion Lambda. There is no $default route: /docs, /openapi.json, /metrics and /readyz are answered by
# API Gateway with 404 and never reach the gateway from the internet.
#
# Not here, on purpose:
# - WebSockets: HTTP APIs do not carry them, and an API Gateway WebSocket API would call the gateway once
#   per message, which it does not serve. WebSocket clients (ccxt) connect to the internet-facing ALB that
#   the chart's Ingress creates (/ws, /ws-api, /stream; deploy/README.md).
# - X-Ray: HTTP APIs cannot trace requests (only REST APIs can); a request's trace starts at the gateway,
#   whose spans the ADOT collector sends to X-Ray.

# --- internal NLB in front of the gateway pods -------------------------------------------------------

resource "aws_security_group" "nlb" {
  name        = "${var.name}-gateway-nlb"
  description = "Internal NLB of the gateway (VPC link traffic only)"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "nlb_tls" {
  security_group_id = aws_security_group.nlb.id
  description       = "TLS from the API Gateway VPC links inside the VPC"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "nlb_gateway" {
  security_group_id = aws_security_group.nlb.id
  description       = "To the gateway pods"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = var.gateway_port
  to_port           = var.gateway_port
}

resource "aws_lb" "gateway" {
  name                             = "${var.name}-gw"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = var.subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true
  # VPC link traffic arrives through PrivateLink; the listener's TLS and the VPC-only rules guard it.
  enforce_security_group_inbound_rules_on_private_link_traffic = "off"
  tags                                                         = var.tags
}

resource "aws_lb_target_group" "gateway" {
  name                 = "${var.name}-gw"
  port                 = var.gateway_port
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    protocol            = "HTTP"
    path                = "/readyz"
    port                = "traffic-port"
    healthy_threshold   = 2
    unhealthy_threshold = 2
    interval            = 10
  }

  tags = var.tags
}

resource "aws_lb_listener" "gateway" {
  load_balancer_arn = aws_lb.gateway.arn
  port              = 443
  protocol          = "TLS"
  certificate_arn   = var.certificate_arn
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }

  tags = var.tags
}

# --- HTTP API (REST) ----------------------------------------------------------------------------------

resource "aws_apigatewayv2_vpc_link" "http" {
  name               = "${var.name}-http"
  subnet_ids         = var.subnet_ids
  security_group_ids = [aws_security_group.nlb.id]
  tags               = var.tags
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/aws/apigateway/${var.name}-http"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

locals {
  access_log_format = jsonencode({
    requestId      = "$context.requestId"
    ip             = "$context.identity.sourceIp"
    requestTime    = "$context.requestTime"
    routeKey       = "$context.routeKey"
    status         = "$context.status"
    latency        = "$context.integrationLatency"
    errorMessage   = "$context.error.message"
    integrationErr = "$context.integrationErrorMessage"
  })
}

resource "aws_apigatewayv2_api" "http" {
  name          = "${var.name}-rest"
  protocol_type = "HTTP"
  description   = "Binance-compatible REST API of the spot exchange (/api/v3/*)"
  tags          = var.tags
}

resource "aws_apigatewayv2_integration" "gateway" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "HTTP_PROXY"
  integration_method     = "ANY"
  integration_uri        = aws_lb_listener.gateway.arn
  connection_type        = "VPC_LINK"
  connection_id          = aws_apigatewayv2_vpc_link.http.id
  payload_format_version = "1.0"

  tls_config {
    server_name_to_verify = var.internal_domain
  }
}

# Authentication (API key + HMAC signature) is the gateway's job, as Binance clients sign requests
# themselves; API Gateway passes them through untouched. Only the REST surface is routed.
resource "aws_apigatewayv2_route" "rest" {
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "ANY /api/{proxy+}"
  target             = "integrations/${aws_apigatewayv2_integration.gateway.id}"
  authorization_type = "NONE"
}

# Binance's wallet API (/sapi/v1/capital/withdraw/*), signed by the client as the REST surface is.
resource "aws_apigatewayv2_route" "wallet" {
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "ANY /sapi/{proxy+}"
  target             = "integrations/${aws_apigatewayv2_integration.gateway.id}"
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_integration" "ingestion_lambda" {
  count = var.orders_via_lambda ? 1 : 0

  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = var.ingestion_lambda_invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "order_via_lambda" {
  count = var.orders_via_lambda ? 1 : 0

  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "POST /api/v3/order"
  target             = "integrations/${aws_apigatewayv2_integration.ingestion_lambda[0].id}"
  authorization_type = "NONE"
}

resource "aws_lambda_permission" "api_gateway" {
  count = var.orders_via_lambda ? 1 : 0

  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = var.ingestion_lambda_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*/api/v3/order"
}

resource "aws_apigatewayv2_stage" "http" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = local.access_log_format
  }

  tags = var.tags
}
