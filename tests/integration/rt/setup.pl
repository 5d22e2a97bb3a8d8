#!/usr/bin/perl
# Prepares a freshly initialised RT database for the integration test and prints JSON:
#   {"token": "<auth token of root, the agent>"}
# It turns SLAs on for the General queue and creates the customer user (password from the first argument) with the rights a
# requestor needs to open and answer tickets in the General queue through REST2.
# Run with RT_SITE_CONFIG / RT_SITE_CONFIG_DIR pointing at the test's site config.
use strict;
use warnings;

use lib '/usr/share/request-tracker5/lib', '/usr/local/share/request-tracker5/lib';
use JSON;
use RT;

my $customer_password = shift @ARGV or die "usage: setup.pl CUSTOMER_PASSWORD\n";

RT::LoadConfig();
RT::Init();

my $system = RT->SystemUser;

my $root = RT::User->new($system);
$root->Load('root') or die "no root user\n";

my $token = RT::AuthToken->new(RT::CurrentUser->new($root));
my ($token_id, $token_msg, $authstring) =
    $token->Create(Owner => $root->id, Description => 'sladaemon integration test');
die "auth token: $token_msg\n" unless $token_id;

my $customer = RT::User->new($system);
my ($user_id, $user_msg) = $customer->Create(
    Name         => 'customer',
    EmailAddress => 'customer@example.com',
    RealName     => 'A Customer',
    Privileged   => 0,
    Password     => $customer_password,
);
die "customer user: $user_msg\n" unless $user_id;

my $queue = RT::Queue->new($system);
$queue->Load('General') or die "no General queue\n";
my ($sla_ok, $sla_msg) = $queue->SetSLADisabled(0);    # queues come with SLAs turned off
die "enable SLA: $sla_msg\n" unless $sla_ok;
for my $right (qw(SeeQueue CreateTicket ShowTicket ReplyToTicket)) {
    my ($ok, $msg) = $customer->PrincipalObj->GrantRight(Right => $right, Object => $queue);
    die "grant $right: $msg\n" unless $ok;
}

print encode_json({ token => $authstring }), "\n";
