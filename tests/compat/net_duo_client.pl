#!/usr/bin/perl
# A thin driver of Debian's Net::Duo::Auth (libnet-duo-perl) for test_unix.py.
#
#   net_duo_client.pl HOST:PORT CAFILE IKEY SKEY ACTION [ARGS...]
#
# ACTION: check | preauth USER | passcode USER CODE | push_async USER | status TXID
# Prints one JSON object. Net::Duo pins server certificates to "CN=*.duosecurity.com" through
# LWP's If-SSL-Cert-Subject request header; the user agent below drops that header and
# verifies against Ward's CA instead (name checked against HOST as usual).
use strict;
use warnings;

package NoDuoSubjectAgent;
use parent 'LWP::UserAgent';

sub send_request {
    my ($self, $request, @rest) = @_;
    $request->remove_header('If-SSL-Cert-Subject');
    return $self->SUPER::send_request($request, @rest);
}

package main;

use JSON::PP;
use Net::Duo::Auth;
use Net::Duo::Auth::Async;

my ($host, $cafile, $ikey, $skey, $action, @args) = @ARGV;
die "usage: $0 HOST CAFILE IKEY SKEY ACTION [ARGS]\n" unless defined $action;

my $agent = NoDuoSubjectAgent->new(
    timeout  => 60,
    ssl_opts => { SSL_ca_file => $cafile, verify_hostname => 1 },
);
my $duo = Net::Duo::Auth->new({
    api_hostname    => $host,
    integration_key => $ikey,
    secret_key      => $skey,
    user_agent      => $agent,
});

my $json = JSON::PP->new->canonical(1);
my $out = eval {
    if ($action eq 'check') {
        { time => $duo->check };
    } elsif ($action eq 'preauth') {
        $duo->call_json('POST', '/auth/v2/preauth', { username => $args[0] });
    } elsif ($action eq 'passcode') {
        my ($ok, $data) = $duo->auth({ username => $args[0], factor => 'passcode', passcode => $args[1] });
        { success => $ok ? JSON::PP::true : JSON::PP::false, %$data };
    } elsif ($action eq 'push_async') {
        my $tx = $duo->auth_async({
            username => $args[0], factor => 'push',
            pushinfo => ['Request', 'net-duo test', 'Command', 'sudo ls'],
        });
        { txid => $tx->id };
    } elsif ($action eq 'status') {
        my ($status, $data) = Net::Duo::Auth::Async->new($duo, $args[0])->status;
        { status => $status, %$data };
    } else {
        die "unknown action $action\n";
    }
};
if (!defined $out) {
    print $json->encode({ error => "$@" }), "\n";
    exit 2;
}
print $json->encode($out), "\n";
