# API Gateway, the public entry of the design: an HTTP API for REST (/api/v3/*) and a WebSocket API,
# both reaching the gateway pods privately through VPC links to an internal NLB (TLS). The NLB's target
# group is filled with gateway pod IPs by the AWS Load Balancer Controller (TargetGroupBinding, chart
# value awsLoadBalancer.targetGroupArn). API Gateway adds throttling in front of the gateway's own per-key
# rate limits, access logs and X-Ray traces. Optionally POST /api/v3/order goes to the ingestion Lambda.
#
# WebSocket API note: API Gateway terminates the WebSocket and calls the integration once per event
# ($connect, $disconnect, each message) over HTTP; the gateway answers those under /apigw/ws/*, and pushes
# to clients through the @connections callback URL. Clients that want a plain WebSocket (ccxt) use the
# ALB Ingress path /ws, /ws-api, /stream instead.

data "aws_region" "current" {}

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
  for_each = toset(["http", "websocket"])

  name              = "/aws/apigateway/${var.name}-${each.value}"
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
# themselves; API Gateway passes them through untouched.
resource "aws_apigatewayv2_route" "default" {
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "$default"
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
    destination_arn = aws_cloudwatch_log_group.access["http"].arn
    format          = local.access_log_format
  }

  tags = var.tags
}

# --- WebSocket API ------------------------------------------------------------------------------------

# WebSocket APIs reach private targets only through a REST-style VPC link to an NLB.
resource "aws_api_gateway_vpc_link" "websocket" {
  name        = "${var.name}-websocket"
  target_arns = [aws_lb.gateway.arn]
  tags        = var.tags
}

resource "aws_apigatewayv2_api" "websocket" {
  name                       = "${var.name}-websocket"
  protocol_type              = "WEBSOCKET"
  description                = "Market data and user data streams of the spot exchange"
  route_selection_expression = "$request.body.method"
  tags                       = var.tags
}

locals {
  websocket_routes = {
    "$connect"    = "connect"
    "$disconnect" = "disconnect"
    "$default"    = "message"
  }
}

resource "aws_apigatewayv2_integration" "websocket" {
  for_each = local.websocket_routes

  api_id             = aws_apigatewayv2_api.websocket.id
  integration_type   = "HTTP_PROXY"
  integration_method = "POST"
  integration_uri    = "https://${var.internal_domain}/apigw/ws/${each.value}"
  connection_type    = "VPC_LINK"
  connection_id      = aws_api_gateway_vpc_link.websocket.id

  tls_config {
    server_name_to_verify = var.internal_domain
  }
}

resource "aws_apigatewayv2_route" "websocket" {
  for_each = local.websocket_routes

  api_id             = aws_apigatewayv2_api.websocket.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.websocket[each.key].id}"
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_stage" "websocket" {
  api_id      = aws_apigatewayv2_api.websocket.id
  name        = "live"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access["websocket"].arn
    format          = local.access_log_format
  }

  tags = var.tags
}
