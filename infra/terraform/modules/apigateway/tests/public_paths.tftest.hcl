# The internet reaches the gateway's REST API and nothing else of it (issue 20): the only routes are the Binance
# surface under /api, its wallet API under /sapi (and, with orders_via_lambda, POST /api/v3/order to the Lambda), and there is no $default
# route, so /docs, /openapi.json, /metrics and the probes are answered 404 by API Gateway. Run offline with
# the AWS provider mocked (tests/deploy/test_terraform.py, which also reads every route_key in main.tf).

mock_provider "aws" {}

variables {
  name            = "spot-test"
  vpc_id          = "vpc-0123456789abcdef0"
  subnet_ids      = ["subnet-a", "subnet-b", "subnet-c"]
  vpc_cidr_block  = "10.0.0.0/16"
  certificate_arn = "arn:aws:acm:eu-west-1:111122223333:certificate/test"
  internal_domain = "gateway.internal.example.test"
  kms_key_arn     = "arn:aws:kms:eu-west-1:111122223333:key/test"
}

run "only_the_rest_surface_is_routed_to_the_gateway" {
  command = plan

  assert {
    condition     = aws_apigatewayv2_route.rest.route_key == "ANY /api/{proxy+}"
    error_message = "the gateway's REST surface is under /api"
  }

  assert {
    condition     = aws_apigatewayv2_route.wallet.route_key == "ANY /sapi/{proxy+}"
    error_message = "the wallet API (withdrawals) is under /sapi"
  }

  assert {
    condition     = length(aws_apigatewayv2_route.order_via_lambda) == 0
    error_message = "no other route without orders_via_lambda"
  }

  assert {
    condition     = aws_lb_target_group.gateway.health_check[0].path == "/readyz"
    error_message = "the probe is the NLB's, inside the VPC"
  }
}

run "the_lambda_takes_new_orders_only" {
  command = plan

  variables {
    orders_via_lambda           = true
    ingestion_lambda_invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:111122223333:function:spot-test/invocations"
    ingestion_lambda_name       = "spot-test-order-ingestion"
  }

  assert {
    condition     = [for r in aws_apigatewayv2_route.order_via_lambda : r.route_key] == ["POST /api/v3/order"]
    error_message = "the Lambda's one route is POST /api/v3/order"
  }

  assert {
    condition     = aws_apigatewayv2_route.rest.route_key == "ANY /api/{proxy+}"
    error_message = "everything else under /api still goes to the gateway, nothing outside it"
  }
}
