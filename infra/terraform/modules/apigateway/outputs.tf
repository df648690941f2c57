output "http_api_endpoint" {
  description = "Public endpoint of the REST API."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "gateway_target_group_arn" {
  description = "Target group the chart binds the gateway pods to (awsLoadBalancer.targetGroupArn)."
  value       = aws_lb_target_group.gateway.arn
}

output "gateway_nlb_dns_name" {
  description = "DNS name of the internal NLB; point internal_domain at it."
  value       = aws_lb.gateway.dns_name
}

output "nlb_security_group_id" {
  description = "Security group of the internal NLB; the nodes' group admits it on the gateway port."
  value       = aws_security_group.nlb.id
}
